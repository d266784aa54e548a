/**
 * Stored JSON text spliced into answers (src/storage/json-text.ts): stringifyJson writes each
 * JsonText's text verbatim and is JSON.stringify for everything else.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { JsonText, stringifyJson } from '../../src/storage/json-text.js';

describe('stringifyJson writes each JsonText as its text', () => {
  it('at the top level, in objects and in arrays, nested at any depth', () => {
    const value = new JsonText('{"a": 1, "b": [1, 2]}');
    expect(stringifyJson(value)).toBe('{"a": 1, "b": [1, 2]}');
    expect(stringifyJson({ data: { record: { value, metadata: new JsonText('{}') } } })).toBe('{"data":{"record":{"value":{"a": 1, "b": [1, 2]},"metadata":{}}}}');
    expect(stringifyJson([new JsonText('"x"'), [new JsonText('1'), { v: [new JsonText('null')] }]])).toBe('["x",[1,{"v":[null]}]]');
  });

  it('the same JsonText met twice is written twice, and many are written in their places', () => {
    const texts = Array.from({ length: 25 }, (_, i) => new JsonText(`[${i}, "t${i}"]`));
    const shared = new JsonText('"shared"');
    expect(stringifyJson({ a: shared, b: shared })).toBe('{"a":"shared","b":"shared"}');
    expect(JSON.parse(stringifyJson(texts))).toEqual(texts.map((_, i) => [i, `t${i}`]));
  });

  it('texts holding `$` patterns, quotes, backslashes and escapes are not rewritten', () => {
    const text = String.raw`{"s": "$& $1 $$ $' \" \\ \u2028 \u0001 é 👍"}`;
    expect(stringifyJson({ v: new JsonText(text) })).toBe(`{"v":${text}}`);
  });

  it('strings holding U+0000, or text resembling a placeholder, are left as JSON.stringify writes them', () => {
    const tricky = {
      nul: 'a\u0000b',
      fakeToken: '\u0000deadbeefdeadbeefdeadbeefdeadbeef:0',
      escapedLookalike: String.raw`\u0000deadbeef:0`,
      quoted: '"\u0000"',
      v: new JsonText('[1, 2]'),
      [`\u0000key:0`]: 1,
    };
    expect(stringifyJson(tricky)).toBe(JSON.stringify({ ...tricky, v: [1, 2] }).replace('"v":[1,2]', '"v":[1, 2]'));
  });

  it('gives exactly what JSON.stringify gives for any value without a JsonText', () => {
    fc.assert(fc.property(fc.jsonValue(), (v) => stringifyJson(v) === JSON.stringify(v)));
    const date = new Date(0);
    for (const v of [undefined, null, 0, -0, NaN, 'x', [undefined, () => 1], { u: undefined, d: date, n: Infinity }]) expect(stringifyJson(v)).toBe(JSON.stringify(v));
  });
});

describe('a JsonText anywhere else', () => {
  it('is its parsed value for JSON.stringify, so other serializers still write correct JSON', () => {
    const value = new JsonText('{"a": 1e21, "b": [1, 2], "c": "\\u0001"}');
    expect(JSON.stringify({ value })).toBe('{"value":{"a":1e+21,"b":[1,2],"c":"\\u0001"}}');
    expect(value.toJSON()).toEqual({ a: 1e21, b: [1, 2], c: '\u0001' });
  });

  it('inside a toJSON that runs its own stringifyJson, both calls splice their own texts', () => {
    const inner = { toJSON: () => stringifyJson({ i: new JsonText('[1, 2]') }) };
    expect(stringifyJson({ o: new JsonText('{"x": 1}'), inner })).toBe(String.raw`{"o":{"x": 1},"inner":"{\"i\":[1, 2]}"}`);
  });
});

describe('splicing ends with its call', () => {
  it('after a toJSON throws', () => {
    const bad = { toJSON: () => { throw new Error('boom'); } };
    expect(() => stringifyJson({ v: new JsonText('1'), bad })).toThrow('boom');
    expect(JSON.stringify({ v: new JsonText('[1, 2]') })).toBe('{"v":[1,2]}');
  });

  it('after JSON.stringify refuses a BigInt or a cycle', () => {
    expect(() => stringifyJson({ v: new JsonText('1'), n: 1n })).toThrow(TypeError);
    expect(JSON.stringify(new JsonText('[1, 2]'))).toBe('[1,2]');
    const cycle: Record<string, unknown> = { v: new JsonText('2') };
    cycle.self = cycle;
    expect(() => stringifyJson(cycle)).toThrow(TypeError);
    expect(JSON.stringify(new JsonText('{"a": 1}'))).toBe('{"a":1}');
    expect(stringifyJson({ v: new JsonText('{"a": 1}') })).toBe('{"v":{"a": 1}}');
  });
});
