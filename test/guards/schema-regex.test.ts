/**
 * Admin-supplied JSON Schemas cannot stall the service (issue 11): regular expressions run on a
 * linear-time engine (RE2 semantics, re2js) or the schema is refused, formats and uniqueItems
 * are linear, a schema's validation and compilation cost is bounded before it is accepted.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app.js';
import { compileSchema, linearRegex, MAX_PATTERN_PROGRAM, MAX_SCHEMA_BYTES, validationIssues } from '../../src/storage/schemas.js';
import { RECORDS, SET_SCHEMA, dataOf, extension, type Extension, type Result } from './support.js';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => {
  await t?.close();
});

const CATASTROPHIC = '^(a+)+$';
/** The issue's input: 31 characters, which took 10–59 s on JavaScript's backtracking engine. */
const EVIL = `${'a'.repeat(30)}!`;
/** Near the default value limit (64 KiB), as a JSON string value. */
const EVIL_64K = `${'a'.repeat(65_000)}!`;

function rnd(n: number, alphabet: string, seed: number): string {
  let x = seed;
  let s = '';
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    s += alphabet[(x >> 16) % alphabet.length];
  }
  return s;
}

async function setSchema(installId: string, namespace: string, schema: unknown, tenantId = t.tenantId): Promise<Result> {
  const res = await t.gql(SET_SCHEMA, { input: { installId, namespace, schema } }, { token: await t.adminToken(tenantId) });
  return dataOf(res).setNamespaceSchema;
}

async function timed<T>(f: () => Promise<T>): Promise<[T, number]> {
  const started = performance.now();
  const result = await f();
  return [result, performance.now() - started];
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** Another tenant reading one key in a loop until `stop` resolves; returns each read's latency. */
async function readLoop(reader: Extension, stop: Promise<unknown>): Promise<number[]> {
  let done = false;
  void stop.finally(() => {
    done = true;
  });
  const latencies: number[] = [];
  while (!done && latencies.length < 2000) {
    const [res, ms] = await timed(() => reader.gql(RECORDS, { ns: 'other', keys: ['k'] }));
    expect(dataOf(res).records[0]).toMatchObject({ key: 'k' });
    latencies.push(ms);
  }
  return latencies;
}

describe('the catastrophic pattern of issue 11', () => {
  it('validates in under 10 ms on the linear engine, for 31 characters and for 64 KiB', () => {
    const validate = compileSchema({ type: 'string', pattern: CATASTROPHIC });
    for (const input of [EVIL, EVIL_64K]) {
      validationIssues(validate, input); // first call: V8 compiles the validator
      const started = performance.now();
      const issues = validationIssues(validate, input);
      const ms = performance.now() - started;
      console.log(`[schema-regex] ${CATASTROPHIC} on ${input.length} characters: ${ms.toFixed(2)} ms`);
      expect(issues).toEqual([expect.objectContaining({ keyword: 'pattern' })]);
      expect(ms).toBeLessThan(10);
    }
    expect(validationIssues(validate, 'aaaa')).toEqual([]);
  });

  it('a write through GraphQL answers ValidationFailed at once, and matching values are stored', async () => {
    const ext = await extension(t);
    expect((await setSchema(ext.install.id, 'evil', { type: 'string', pattern: CATASTROPHIC })).__typename).toBe('SetNamespaceSchemaSuccess');
    await ext.put({ namespace: 'evil', key: 'warm', value: 'aaa' });
    for (const value of [EVIL, EVIL_64K]) {
      const [put, ms] = await timed(() => ext.put({ namespace: 'evil', key: 'k', value }));
      console.log(`[schema-regex] putRecord of ${value.length} characters against ${CATASTROPHIC}: ${ms.toFixed(1)} ms`);
      expect(put).toMatchObject({ __typename: 'ValidationFailed', schemaVersion: 1 });
      expect(put.issues).toEqual([expect.objectContaining({ path: '', keyword: 'pattern' })]);
      // The whole request (HTTP, transaction, database): one generous bound; it was 10–59 s.
      expect(ms).toBeLessThan(1000);
    }
    expect((await ext.put({ namespace: 'evil', key: 'k', value: 'a'.repeat(65_000) })).__typename).toBe('PutRecordSuccess');
  });

  it("while such writes run, another tenant's reads are not blocked", async () => {
    const attacker = await extension(t);
    const reader = await extension(t, { tenantId: crypto.randomUUID() });
    expect((await reader.put({ namespace: 'other', key: 'k', value: { hello: 'world' } })).__typename).toBe('PutRecordSuccess');
    expect((await setSchema(attacker.install.id, 'evil', { type: 'string', pattern: CATASTROPHIC })).__typename).toBe('SetNamespaceSchemaSuccess');
    const writes = (async () => {
      const times: number[] = [];
      for (let round = 0; round < 3; round++) {
        const batch = await Promise.all(
          Array.from({ length: 8 }, (_, i) => timed(() => attacker.put({ namespace: 'evil', key: `e${i}`, value: i % 2 ? EVIL : EVIL_64K }))),
        );
        for (const [put, ms] of batch) {
          expect(put.__typename).toBe('ValidationFailed');
          times.push(ms);
        }
      }
      return times;
    })();
    const [writeTimes, reads] = await Promise.all([writes, readLoop(reader, writes)]);
    const p95 = percentile(reads, 95);
    console.log(
      `[schema-regex] 24 writes against ${CATASTROPHIC} (8 at a time): slowest ${Math.max(...writeTimes).toFixed(0)} ms; ` +
        `other tenant meanwhile: ${reads.length} reads, p95 ${p95.toFixed(1)} ms, max ${Math.max(...reads).toFixed(1)} ms`,
    );
    expect(reads.length).toBeGreaterThan(0);
    // It was 10–59 s per write, during which nothing else ran. One generous bound (CI runs both
    // backends at once on two cores); the figures are printed above.
    expect(p95).toBeLessThan(1000);
  });

  it('the costliest pattern the engine accepts stays bounded on a 64 KiB value', async () => {
    // A DFA-hostile pattern (the "n-th character from the end" family) at the instruction limit,
    // on 64 KiB of its alphabet: linear, but O(instructions × characters). Measured and bounded.
    const attacker = await extension(t);
    const reader = await extension(t, { tenantId: crypto.randomUUID() });
    expect((await reader.put({ namespace: 'other', key: 'k', value: 1 })).__typename).toBe('PutRecordSuccess');
    const hostile = `^(?:a|b)*a(?:a|b){${MAX_PATTERN_PROGRAM - 24}}$`;
    expect(linearRegex(hostile).size).toBeLessThanOrEqual(MAX_PATTERN_PROGRAM);
    expect((await setSchema(attacker.install.id, 'dfa', { type: 'string', pattern: hostile })).__typename).toBe('SetNamespaceSchemaSuccess');
    const writes = (async () => {
      const times: number[] = [];
      for (let i = 0; i < 3; i++) {
        // Random a/b text whose character at the pattern's distance from the end is 'b': no match.
        const text = rnd(65_000, 'ab', i);
        const at = text.length - (MAX_PATTERN_PROGRAM - 24) - 1;
        const value = `${text.slice(0, at)}b${text.slice(at + 1)}`;
        const [put, ms] = await timed(() => attacker.put({ namespace: 'dfa', key: `d${i}`, value }));
        expect(put.__typename).toBe('ValidationFailed');
        times.push(ms);
      }
      return times;
    })();
    const [writeTimes, reads] = await Promise.all([writes, readLoop(reader, writes)]);
    console.log(
      `[schema-regex] ${MAX_PATTERN_PROGRAM}-instruction DFA-hostile pattern on 65,000 characters: writes ${writeTimes.map((ms) => ms.toFixed(0)).join(', ')} ms; ` +
        `other tenant meanwhile: ${reads.length} reads, max ${Math.max(...reads).toFixed(1)} ms`,
    );
    expect(Math.max(...writeTimes)).toBeLessThan(3000);
    expect(Math.max(...reads)).toBeLessThan(3000);
  });
});

describe('pattern memory is bounded', () => {
  it('only the most recently used patterns keep DFA states, each within a small budget', () => {
    const patterns = Array.from({ length: 300 }, (_, i) => `^(?:a|b)*a(?:a|b){${20 + (i % 200)}}(?:c${i})?$`);
    const heapBefore = process.memoryUsage().heapUsed;
    for (const [i, pattern] of patterns.entries()) {
      const validate = compileSchema({ type: 'string', pattern });
      validationIssues(validate, rnd(4000, 'ab', i));
    }
    const states = (p: string) => (linearRegex(p).dfa as unknown as { stateCount: number }).stateCount;
    console.log(
      `[schema-regex] 300 DFA-hostile patterns exercised: heap +${((process.memoryUsage().heapUsed - heapBefore) / 1048576).toFixed(0)} MiB; ` +
        `states of the oldest ${states(patterns[0]!)}, of the newest ${states(patterns[299]!)}`,
    );
    expect(states(patterns[0]!)).toBe(0);
    expect(states(patterns[299]!)).toBeGreaterThan(0);
    expect(linearRegex(patterns[299]!).dfa.memBudget).toBeLessThanOrEqual(256 * 1024);
  });
});

describe('patterns the linear engine cannot run are refused at setNamespaceSchema', () => {
  const refused: Array<[string, unknown, string, RegExp]> = [
    ['a backreference', { type: 'string', pattern: '^(a)\\1$' }, '/pattern', /backreference/],
    ['a named backreference', { type: 'string', pattern: '(?<x>a)\\k<x>' }, '/pattern', /backreference/],
    ['a lookahead', { properties: { p: { pattern: '^(?=.*\\d)\\w+$' } } }, '/properties/p/pattern', /lookahead/],
    ['a negative lookbehind', { items: { pattern: '(?<!x)y' } }, '/items/pattern', /lookahead and lookbehind/],
    ['a lookahead as a patternProperties key', { patternProperties: { '^(?!_)': true } }, '/patternProperties/^(?!_)', /lookahead/],
    ['a backreference in $defs', { $defs: { d: { pattern: '(.)\\1' } }, $ref: '#/$defs/d' }, '/$defs/d/pattern', /backreference/],
    ['a backreference under propertyNames', { propertyNames: { pattern: '(ab)\\1' } }, '/propertyNames/pattern', /backreference/],
    ['a Unicode property RE2 lacks', { pattern: '\\p{Emoji}' }, '/pattern', /Unicode property/],
    ['a repetition RE2 cannot count to', { pattern: 'a{1001}' }, '/pattern', /linear-time engine/],
    ['a pattern compiling to too many instructions', { pattern: '^(?:[a-z]{500}|[0-9]{500})$' }, '/pattern', /instructions/],
    ['a pattern longer than the limit', { pattern: 'a'.repeat(1025) }, '/pattern', /characters long/],
  ];

  it.each(refused)('refuses %s as ValidationFailed naming the pattern, and keeps the active version', async (_label, schema, path, message) => {
    const ext = await extension(t);
    const v1 = { type: 'string' };
    await setSchema(ext.install.id, 'p', v1);
    const [result, ms] = await timed(() => setSchema(ext.install.id, 'p', schema));
    expect(result).toMatchObject({ __typename: 'ValidationFailed', code: 'VALIDATION_FAILED' });
    expect(result.issues).toEqual([expect.objectContaining({ path, keyword: 'pattern', message: expect.stringMatching(message) })]);
    expect(ms).toBeLessThan(1000);
    const active = await ext.gql('query { install { namespace(name: "p") { schema { version } } } }');
    expect(dataOf(active).install.namespace.schema.version).toBe(1);
  });

  it('compiling a stored schema the engine refuses is ValidationFailed (a write fails cleanly), never a crash', () => {
    let error: unknown;
    try {
      compileSchema({ pattern: '(a)\\1' });
    } catch (e) {
      error = e;
    }
    expect(error).toMatchObject({ code: 'VALIDATION_FAILED', issues: [expect.objectContaining({ path: '/pattern' })] });
  });
});

describe('ordinary patterns keep their ECMAScript meaning', () => {
  const patterns = [
    '^[a-z]+$', '^[A-Z][a-z]*$', '^\\d{3}-\\d{4}$', '^\\w+@\\w+\\.\\w{2,}$', '^\\p{L}+$', '^\\p{Lu}\\p{Ll}*$', '\\P{L}',
    '^\\p{Letter}+$', '^\\p{Script=Greek}+$', '^\\p{sc=Cyrillic}+$', '^[\\p{L}\\p{N}_-]{1,32}$', '^\\p{General_Category=Decimal_Number}+$',
    '^\\s*$', '\\S', '^[\\s\\S]{2}$', '^[^\\s]+$', '^.$', '^.+$', '^a.c$', '[^]', '^[]', '\\u00e9', '^\\u{1F600}$', '^\\uD83D\\uDE00$',
    '^😀+$', '^[😀-😂]$', '^[\\u0041-\\u005A]+$', '\\x41', '\\cJ', '^\\t\\v\\f$', '\\bword\\b', '\\Bx', '^(?:ab|cd)+$', '(?<year>\\d{4})',
    '^[\\]\\[]+$', '^[\\^]$', '^\\/$', '^[.]$', '^[:alpha:]+$', '^[\\b]$', '^[\\w.-]+$', '^\\$\\d+(?:\\.\\d\\d)?$', '^\\0$',
    '^(?:\\+|-)?\\d+$', '^[a-z]{2,}?$', 'a*?b', '^\\p{ASCII}+$', '\\P{ASCII}',
  ];
  const inputs = [
    '', 'abc', 'Abc', 'ABC', '123-4567', 'ada@example.com', 'Éléphant', 'Ωμέγα', 'Привет', 'user_name-1', '٣٤', '  ', '\t\n',
    '\u00a0', '\u2028', '\ufeff', '\u3000', '\u200b', '\u0085', 'x', 'ab', 'a\nc', 'a\rc', 'abc', 'é', 'e\u0301', '😀', '😀😀', '😁',
    '\ud83d', 'A', 'Z', 'J', '\n', '\t\v\f', 'a word here', 'awordb', 'xx', 'abcd', 'abab', '2024', '[]', '^', '/', '.', ':alpha:',
    '\b', 'a.b-c', '$12.50', '\u0000', '+12', '-7', 'aa', 'b', 'aab', 'ascii', 'naïve',
  ];

  it('match exactly as JavaScript does, on a corpus of patterns and inputs', () => {
    let compared = 0;
    for (const pattern of patterns) {
      const js = new RegExp(pattern, 'u');
      const linear = linearRegex(pattern);
      for (const input of inputs) {
        for (const s of [input, `_${input}_`, input + input]) {
          compared++;
          expect(linear.re.test(s), `${pattern} on ${JSON.stringify(s)}`).toBe(js.test(s));
        }
      }
    }
    expect(compared).toBeGreaterThan(7000);
  });

  it('match exactly as JavaScript does on generated patterns (seeded)', () => {
    let seed = 20240611;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return (seed >> 8) % n;
    };
    const atoms = [
      'a', 'b', 'é', '😀', '.', '\\s', '\\S', '\\d', '\\w', '\\W', '\\u00e9', '\\u{1F600}', '\\x41', '\\n', '\\r', '\\.', '\\^',
      '\\$', '\\[', '\\]', '\\(', '\\|', '\\\\', '[abc]', '[^abc]', '[a-z]', '[\\s]', '[\\S]', '[^\\s]', '[\\d\\s]', '[\\w-]', '[-a]',
      '[\\b]', '[[]', '[^]', '[.]', '[\\p{L}]', '[^\\p{L}\\d]', '\\p{L}', '\\p{Lu}', '\\P{L}', '\\p{Script=Greek}', '[:alpha:]',
      '\\b', '^', '$', '(?:a|b)', '(a|bc)', '(?<n>x|y)', ' ', '-', '&', '~',
    ];
    const quantifiers = ['', '', '', '*', '+', '?', '{2}', '{1,3}', '*?', '+?'];
    const inputs2 = ['', 'a', 'ab', 'abc', 'é', '😀', 'x😀y', ' ', '\u00a0', '\u2028', '\ufeff', '\r', '\n', 'A', '0', '_', '-', '[', ']',
      '.', '\\', 'α', 'aé b', 'a\nb', 'abab', 'xy', 'b&~'];
    let compared = 0;
    for (let n = 0; n < 1500; n++) {
      let pattern = rand(4) === 0 ? '^' : '';
      for (let i = 0, len = 1 + rand(4); i < len; i++) {
        const atom = atoms[rand(atoms.length)]!;
        pattern += atom + (['^', '$', '\\b'].includes(atom) ? '' : quantifiers[rand(quantifiers.length)]!);
      }
      if (rand(4) === 0) pattern += '$';
      let js: RegExp;
      try {
        js = new RegExp(pattern, 'u');
      } catch {
        continue; // not an ECMAScript pattern: refused before translation (as by ajv before)
      }
      const linear = linearRegex(pattern);
      for (const input of inputs2) {
        for (const s of [input, `q${input}z`]) {
          compared++;
          expect(linear.re.test(s), `${pattern} on ${JSON.stringify(s)}`).toBe(js.test(s));
        }
      }
    }
    expect(compared).toBeGreaterThan(50_000);
  });

  it('patterns and patternProperties keep accepting and refusing values through the API', async () => {
    const ext = await extension(t);
    const schema = {
      type: 'object',
      properties: {
        slug: { type: 'string', pattern: '^[a-z0-9]+(?:-[a-z0-9]+)*$' },
        name: { type: 'string', pattern: '^\\p{Lu}\\p{Ll}+(?:\\s\\p{Lu}\\p{Ll}+)*$' },
      },
      patternProperties: { '^x-\\w+$': { type: 'number' } },
      additionalProperties: false,
    };
    expect((await setSchema(ext.install.id, 'ok', schema)).__typename).toBe('SetNamespaceSchemaSuccess');
    const good = await ext.put({ namespace: 'ok', key: 'g', value: { slug: 'my-post-1', name: 'Émile Zola', 'x-rank': 3 } });
    expect(good.__typename).toBe('PutRecordSuccess');
    const badSlug = await ext.put({ namespace: 'ok', key: 'b', value: { slug: 'My Post' } });
    expect(badSlug).toMatchObject({ __typename: 'ValidationFailed' });
    expect(badSlug.issues).toEqual([expect.objectContaining({ path: '/slug', keyword: 'pattern' })]);
    const badName = await ext.put({ namespace: 'ok', key: 'b', value: { name: 'émile' } });
    expect(badName.issues).toEqual([expect.objectContaining({ path: '/name', keyword: 'pattern' })]);
    const badExtra = await ext.put({ namespace: 'ok', key: 'b', value: { 'x-rank': 'high' } });
    expect(badExtra.issues).toEqual([expect.objectContaining({ path: '/x-rank', keyword: 'type' })]);
    const unknown = await ext.put({ namespace: 'ok', key: 'b', value: { y: 1 } });
    expect(unknown.issues).toEqual([expect.objectContaining({ keyword: 'additionalProperties' })]);
  });
});

describe('formats and uniqueItems are linear on 64 KiB values', () => {
  const slow: Array<[string, unknown, unknown]> = [
    // ajv-formats' url regex backtracks quadratically (6 s on this input before the length bound).
    ['url', { format: 'url' }, `ftp://${'::'.repeat(32_000)}!`],
    ['url with userinfo', { format: 'url' }, `ftp://${'a:a@'.repeat(16_000)}=`],
    ['url at its length bound (2,083)', { format: 'url' }, `ftp://${'a:a@'.repeat(519)}=`],
    ['url at its length bound, colons', { format: 'url' }, `ftp://${'::'.repeat(1038)}!`],
    // format: regex only parses its value (never matches with it): bounded by the parser.
    ['regex (nested groups)', { format: 'regex' }, `${'('.repeat(32_000)}${')'.repeat(32_000)}`],
    ['regex (Unicode properties)', { format: 'regex' }, '\\p{L}'.repeat(13_000)],
    ['regex (alternatives)', { format: 'regex' }, 'a|'.repeat(32_000)],
    ['email', { format: 'email' }, `${'a.'.repeat(32_000)}@`],
    ['date-time', { format: 'date-time' }, `2020-01-01T${'0'.repeat(64_000)}`],
    ['uri-reference', { format: 'uri-reference' }, `http://${'A'.repeat(64_000)} `],
    ['uniqueItems (objects)', { uniqueItems: true }, Array.from({ length: 8000 }, (_, i) => ({ a: i }))],
    ['uniqueItems (numbers)', { uniqueItems: true }, Array.from({ length: 12_000 }, (_, i) => i)],
  ];

  it.each(slow)('%s validates a worst-case value quickly', (label, schema, value) => {
    const validate = compileSchema(schema);
    validationIssues(validate, Array.isArray(value) ? [1] : 'x'); // compiles the validator
    // The value's first validation (V8 caches regular expressions by source: a second call on
    // the same `regex` value would only measure its cache).
    const started = performance.now();
    validationIssues(validate, value);
    const ms = performance.now() - started;
    console.log(`[schema-regex] ${label}: ${ms.toFixed(1)} ms`);
    expect(ms).toBeLessThan(250);
  });

  it('url still accepts ordinary URLs and refuses private addresses as before', () => {
    const validate = compileSchema({ format: 'url' });
    expect(validationIssues(validate, 'https://example.com/a?b=c#d')).toEqual([]);
    expect(validationIssues(validate, 'http://user:pw@example.com:8080/x')).toEqual([]);
    expect(validationIssues(validate, 'http://10.0.0.1/')).toHaveLength(1);
    expect(validationIssues(validate, `https://example.com/${'a'.repeat(3000)}`)).toHaveLength(1);
  });

  it('uniqueItems reports the duplicate pair as ajv did, comparing values structurally', () => {
    const validate = compileSchema({ uniqueItems: true });
    expect(validationIssues(validate, [1, 2, 3, { a: 1 }])).toEqual([]);
    expect(validationIssues(validate, [1, { a: 1, b: [2] }, 3, { b: [2], a: 1 }, 5])).toEqual([
      { path: '', keyword: 'uniqueItems', message: 'must NOT have duplicate items (items ## 1 and 3 are identical)' },
    ]);
    expect(validationIssues(validate, [0, -0])).toHaveLength(1);
    expect(validationIssues(validate, [1, '1', [1], { 1: 1 }])).toEqual([]);
  });
});

describe('a schema cannot make validation or compilation costly', () => {
  const exponential = () => {
    const defs: Record<string, unknown> = { a0: { type: 'string', minLength: 1 } };
    for (let k = 1; k <= 40; k++) defs[`a${k}`] = { allOf: [{ $ref: `#/$defs/a${k - 1}` }, { $ref: `#/$defs/a${k - 1}` }] };
    return { $defs: defs, $ref: '#/$defs/a40' };
  };
  const costly: Array<[string, unknown]> = [
    // 2^40 evaluations of a0 for any value: a 3 KB schema that never finishes.
    ['$ref doubling 40 times', exponential()],
    ['applying itself without descending', { $ref: '#' }],
    ['an in-place cycle through $defs', { $defs: { a: { anyOf: [{ type: 'string' }, { $ref: '#/$defs/b' }] }, b: { not: { $ref: '#/$defs/a' } } }, $ref: '#/$defs/a' }],
    // 3,000 keywords on every item of a 32,000-item array: 9 s and, failing, gigabytes of errors.
    ['3,000 keywords per array item', { items: { allOf: Array.from({ length: 3000 }, (_, i) => ({ minimum: -i - 1 })) } }],
    ['140 keywords per array item', { items: { allOf: Array.from({ length: 140 }, (_, i) => ({ minimum: -i - 1 })) } }],
    ['many costly patterns on one string', { allOf: Array.from({ length: 40 }, (_, i) => ({ pattern: `^(?:a|b)*a(?:a|b){30}${i}$` })) }],
    ['6,000 enum values', { enum: Array.from({ length: 6000 }, (_, i) => i) }],
  ];

  it.each(costly)('refuses %s at setNamespaceSchema, quickly', async (_label, schema) => {
    const ext = await extension(t);
    const [result, ms] = await timed(() => setSchema(ext.install.id, 'c', schema));
    expect(result).toMatchObject({ __typename: 'ValidationFailed', code: 'VALIDATION_FAILED' });
    expect(result.issues[0]).toMatchObject({ keyword: 'schemaCost' });
    expect(ms).toBeLessThan(1000);
  });

  it('accepts recursive schemas that descend, and ordinary large ones', () => {
    expect(() => compileSchema({ type: 'object', properties: { name: { type: 'string' }, children: { type: 'array', items: { $ref: '#' } } } })).not.toThrow();
    const events = {
      type: 'array',
      items: {
        oneOf: Array.from({ length: 12 }, (_, i) => ({
          type: 'object',
          properties: { kind: { const: `event-${i}` }, at: { type: 'string', format: 'date-time' }, payload: { type: 'object' } },
          required: ['kind', 'at'],
        })),
      },
    };
    expect(() => compileSchema(events)).not.toThrow();
    const wide = { type: 'object', properties: Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`field${i}`, { type: 'string', maxLength: 100 }])) };
    expect(() => compileSchema(wide)).not.toThrow();
  });

  it('the worst schemas at the limits compile, and validate 64 KiB values, in well under a second', () => {
    const zeros = Array(32_000).fill(0);
    const shapes: Array<[string, unknown, unknown]> = [
      ['allOf of 490', { allOf: Array.from({ length: 490 }, (_, i) => ({ minimum: -i })) }, 0],
      ['490 properties', { properties: Object.fromEntries(Array.from({ length: 490 }, (_, i) => [`p${i}`, { type: 'string' }])) }, { p1: 'x' }],
      ['490 prefixItems', { prefixItems: Array.from({ length: 490 }, () => ({ type: 'number' })) }, [1, 2, 3]],
      ['490 patterns', { properties: Object.fromEntries(Array.from({ length: 490 }, (_, i) => [`p${i}`, { pattern: `^[a-z]{2,8}${i}$` }])) }, { p1: 'ab1' }],
      ['120 keywords per item', { items: { allOf: Array.from({ length: 120 }, (_, i) => ({ minimum: -i - 1 })) } }, zeros],
      ['120 keywords per item, failing', { items: { anyOf: Array.from({ length: 120 }, (_, i) => ({ minimum: i + 1 })) } }, zeros],
      ['60 nested levels', (() => {
        let s: unknown = { type: 'string' };
        for (let i = 0; i < 60; i++) s = { type: 'object', properties: { a: s, b: { type: 'integer' } }, required: ['a'] };
        return s;
      })(), {}],
    ];
    for (const [label, schema, value] of shapes) {
      expect(JSON.stringify(schema).length).toBeLessThanOrEqual(MAX_SCHEMA_BYTES);
      const started = performance.now();
      const validate = compileSchema(schema);
      const compileMs = performance.now() - started;
      const validateStarted = performance.now();
      validationIssues(validate, value);
      const validateMs = performance.now() - validateStarted;
      console.log(`[schema-regex] ${label}: compile ${compileMs.toFixed(0)} ms, first validation ${validateMs.toFixed(0)} ms`);
      expect(compileMs).toBeLessThan(1000);
      expect(validateMs).toBeLessThan(1000);
    }
  });

  it("setting worst-case schemas in a loop does not block another tenant's reads", async () => {
    const admin = await extension(t);
    const reader = await extension(t, { tenantId: crypto.randomUUID() });
    expect((await reader.put({ namespace: 'other', key: 'k', value: 1 })).__typename).toBe('PutRecordSuccess');
    const big = (i: number) => ({ allOf: Array.from({ length: 490 }, (_, j) => ({ minimum: -j - i })) });
    const sets = (async () => {
      const times: number[] = [];
      for (let i = 0; i < 6; i++) {
        const [result, ms] = await timed(() => setSchema(admin.install.id, 'big', i % 2 ? big(i) : exponential()));
        expect(['SetNamespaceSchemaSuccess', 'ValidationFailed']).toContain(result.__typename);
        times.push(ms);
      }
      return times;
    })();
    const [setTimes, reads] = await Promise.all([sets, readLoop(reader, sets)]);
    console.log(
      `[schema-regex] 6 worst-case setNamespaceSchema: slowest ${Math.max(...setTimes).toFixed(0)} ms; ` +
        `other tenant: ${reads.length} reads, p95 ${percentile(reads, 95).toFixed(1)} ms, max ${Math.max(...reads).toFixed(1)} ms`,
    );
    expect(Math.max(...setTimes)).toBeLessThan(2000);
    expect(Math.max(...reads)).toBeLessThan(2000);
  });
});
