/**
 * Stored values and metadata reach every answer as PostgreSQL's jsonb text, unparsed
 * (src/storage/json-text.ts): whatever door reads a record, the JSON it answers is equal to the
 * JSON written, awkward values included.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { extensionClient, RECORD_FIELDS, type ExtensionClient } from '../records/client.js';
import { subscribe } from '../feed/sse.js';
import { dataOf, startTestApp, type TestApp } from '../support/app.js';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => {
  await t?.close();
});

const AWKWARD = {
  unicode: 'héllo wörld ñ ß Ωμέγα 中文 日本語 مرحبا',
  emoji: '👩‍👩‍👧‍👦 👍🏽 🇫🇷',
  escapes: 'say "hi" \\ back\\slash /slash \\"quoted\\" \\u0041 not an escape',
  separators: 'a, b: c {"x": 1} [1, 2]',
  controls: '\b\f\n\r\t \u0001 \u001f \u007f',
  lineSeparators: '\u2028 \u2029',
  placeholderLike: ['\\u0000deadbeef:0', '"\\u0000"', 'u0000abc:1'],
  nested: [[[]], [{}], [[1, [2, [3, [4, [5]]]]]], { a: { b: { c: [{}] } } }],
  numbers: [0, -0, 0.1, 0.2, -0.5, 1e21, -1e21, 1e-7, 1e20, 123456789.123, 2 ** 53 - 1, -(2 ** 53 - 1), 2 ** 53, 2 ** 53 + 2, 9007199254740993],
  empty: { object: {}, array: [], string: '' },
  nulls: [null, { n: null }],
  booleans: [true, false],
  keys: { '': 1, 'a b': 2, '🔑': 3, é: 4, '"q"': 5, '\\': 6, '1e3': 7 },
};

const METADATA = { tag: 'é "x" \\', n: 1e21, list: [0.1, null, '👍🏽'], nested: { empty: {} } };

/** Key → [value, metadata] written; a value of numbers in exponent form comes back with all its digits in jsonb's text. */
const WRITTEN: Record<string, [unknown, Record<string, unknown>]> = {
  object: [AWKWARD, METADATA],
  string: ['"quoted" \\ 中文 👍🏽 \u2028', {}],
  integer: [-(2 ** 53 - 1), { n: 2 ** 53 - 1 }],
  fraction: [0.1, {}],
  exponent: [1e21, {}],
  array: [[[], {}, [[]], '', 0, false, null], { a: [] }],
  exponents: [[...Array.from({ length: 50 }, (_, i) => (i % 2 ? 1.5e300 : 5e-324)), Number.MAX_VALUE, Number.MIN_VALUE], { big: 1e300 }],
};
const KEYS = Object.keys(WRITTEN);

/** The JSON of what was written, as every reader parses it (-0 is written 0). */
const expected = (key: string) => JSON.parse(JSON.stringify({ value: WRITTEN[key]![0], metadata: WRITTEN[key]![1] }));

/** Asserts each record read (key, value, metadata) carries the JSON written under its key. */
function expectWritten(records: ReadonlyArray<Record<string, any> | null>, keys = KEYS): void {
  expect(records.map((r) => r?.key)).toEqual(keys);
  for (const r of records) expect({ value: r!.value, metadata: r!.metadata }, r!.key).toStrictEqual(expected(r!.key));
}

let c: ExtensionClient;
let start: string;

beforeAll(async () => {
  c = await extensionClient(t);
  const caller = t.adminCaller();
  start = await t.app.storage.changesCursor(caller, await t.app.storage.resolveInstall(caller, c.install.id, 'read'));
  for (const key of KEYS) {
    const put = await c.put({ namespace: 'ns', key, value: WRITTEN[key]![0], metadata: WRITTEN[key]![1] });
    expect(put.__typename, JSON.stringify(put)).toBe('PutRecordSuccess');
  }
  await c.put({ namespace: 'text', key: 'k', value: { a: 1, b: [1, 2], c: 'x, y: z' }, metadata: { m: [true, null] } });
});

async function raw(path: string, init: RequestInit): Promise<{ status: number; text: string }> {
  const res = await fetch(`${t.url}${path}`, init);
  return { status: res.status, text: await res.text() };
}

/** The body of a GraphQL answer reading one record's value and metadata, as sent. */
async function recordAnswer(namespace: string, key: string): Promise<string> {
  const res = await raw('/graphql', {
    method: 'POST',
    headers: { authorization: `Bearer ${c.token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ query: `{ record(namespace: "${namespace}", key: "${key}") { value metadata } }` }),
  });
  expect(res.status, res.text).toBe(200);
  return res.text;
}

describe('GraphQL answers carry the JSON written', () => {
  it('record, records and recordList (fields of Query and of Namespace)', async () => {
    const records = await Promise.all(KEYS.map((k) => c.get('ns', k)));
    expectWritten(records);
    expectWritten(await c.getMany('ns', KEYS));
    const res = await c.gql(
      `query($id: ID, $keys: [String!]!) {
        list: recordList(namespace: "ns", first: 100) { edges { node { ${RECORD_FIELDS} } } }
        install(id: $id) { namespace(name: "ns") {
          one: record(key: "object") { ${RECORD_FIELDS} }
          many: records(keys: $keys) { ${RECORD_FIELDS} }
          list: recordList(first: 100) { edges { node { ${RECORD_FIELDS} } } }
        } }
      }`,
      { id: c.install.id, keys: KEYS },
    );
    const data = dataOf(res);
    const sorted = [...KEYS].sort();
    expectWritten(data.list.edges.map((e: { node: Record<string, any> }) => e.node), sorted);
    expectWritten([data.install.namespace.one], ['object']);
    expectWritten(data.install.namespace.many);
    expectWritten(data.install.namespace.list.edges.map((e: { node: Record<string, any> }) => e.node), sorted);
  });

  it('node(id), and the same record under two aliases', async () => {
    const ids = dataOf(await c.gql(`{ records(namespace: "ns", keys: ${JSON.stringify(KEYS)}) { id } }`)).records.map((r: { id: string }) => r.id);
    for (const [i, id] of ids.entries()) {
      const data = dataOf(await c.gql(`query($id: ID!) { a: node(id: $id) { ... on Record { key value metadata } } b: node(id: $id) { ... on Record { key value metadata } } }`, { id }));
      expectWritten([data.a, data.b], [KEYS[i]!, KEYS[i]!]);
    }
  });

  it('through Yoga itself (a GET) and as application/graphql-response+json', async () => {
    const query = `{ records(namespace: "ns", keys: ${JSON.stringify(KEYS)}) { ${RECORD_FIELDS} } }`;
    const headers = { authorization: `Bearer ${c.token}` };
    const viaGet = await raw(`/graphql?query=${encodeURIComponent(query)}`, { headers: { ...headers, accept: 'application/json' } });
    expect(viaGet.status).toBe(200);
    expectWritten(JSON.parse(viaGet.text).data.records);
    const viaPost = await raw('/graphql', {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/json', accept: 'application/graphql-response+json' },
      body: JSON.stringify({ query }),
    });
    expect(viaPost.status).toBe(200);
    expectWritten(JSON.parse(viaPost.text).data.records);
  });

  it('Query.changes and Subscription.changes with their records', async () => {
    const page = dataOf(
      await c.gql(`query($after: String) { changes(after: $after, namespace: "ns", first: 50) { edges { node { key record { key value metadata } } } } }`, { after: start }),
    );
    expectWritten(page.changes.edges.map((e: { node: { record: Record<string, any> } }) => e.node.record));
    const sub = await subscribe(t.url, `subscription($after: String) { changes(after: $after, namespace: "ns") { key record { key value metadata } } }`, { after: start }, c.token);
    try {
      expectWritten((await sub.take(KEYS.length)).map((e) => e.data.changes.record));
    } finally {
      sub.close();
    }
  });

  it('the stored text itself, unparsed (jsonb writes a space after `:` and `,`)', async () => {
    expect(await recordAnswer('text', 'k')).toBe('{"data":{"record":{"value":{"a": 1, "b": [1, 2], "c": "x, y: z"},"metadata":{"m": [true, null]}}}}');
    // A subscription's events too (Yoga's SSE processor writes each event with the result's stringify).
    const stream = new AbortController();
    const res = await fetch(`${t.url}/graphql`, {
      method: 'POST',
      signal: stream.signal,
      headers: { authorization: `Bearer ${c.token}`, 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify({ query: 'subscription($after: String) { changes(after: $after, namespace: "text") { record { value } } }', variables: { after: start } }),
    });
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let events = '';
    try {
      while (!/data: .*\n\n/.test(events)) events += decoder.decode((await reader.read()).value, { stream: true });
    } finally {
      stream.abort();
    }
    expect(events).toContain('data: {"data":{"changes":{"record":{"value":{"a": 1, "b": [1, 2], "c": "x, y: z"}}}}}\n\n');
  });
});

describe('Runner REST answers carry the JSON written', () => {
  const runner = async (body: unknown) => {
    const res = await raw(`/api/internal/ext-storage/install/${c.install.id}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-runner-auth': t.runnerToken },
      body: JSON.stringify(body),
    });
    expect(res.status, res.text).toBe(200);
    return { text: res.text, body: JSON.parse(res.text) };
  };

  it('get and list', async () => {
    const got = await Promise.all(KEYS.map((key) => runner({ operation: 'get', namespace: 'ns', key })));
    expectWritten(got.map((g) => g.body));
    const list = await runner({ operation: 'list', namespace: 'ns', limit: 100 });
    expectWritten(list.body.items, [...KEYS].sort());
    const valuesOnly = await runner({ operation: 'list', namespace: 'ns', limit: 100, includeMetadata: false });
    expect(valuesOnly.body.items.map((r: { value: unknown }) => r.value)).toStrictEqual([...KEYS].sort().map((k) => expected(k).value));
    expect(valuesOnly.body.items.every((r: object) => !('metadata' in r))).toBe(true);
  });

  it('the stored text itself, unparsed', async () => {
    const got = await runner({ operation: 'get', namespace: 'text', key: 'k' });
    expect(got.text).toContain('"value":{"a": 1, "b": [1, 2], "c": "x, y: z"},"metadata":{"m": [true, null]}}');
  });
});

describe('an answer holds at most 1.5 times the record bytes its budget counts', () => {
  it('numbers written in exponent form come back as JavaScript writes them when their digits would pass that', async () => {
    const text = await recordAnswer('ns', 'exponents');
    // 52 numbers of about 6 bytes stored; jsonb's text would have written about 300 digits for each.
    expect(text.length).toBeLessThan(1000);
    expect(text).toContain('1.5e+300');
    expect(JSON.parse(text).data.record).toStrictEqual(expected('exponents'));
  });

  it('a few such numbers among other JSON come back as PostgreSQL writes them, equal JSON', async () => {
    const text = await recordAnswer('ns', 'object');
    expect(text).toContain('1000000000000000000000');
    expect(JSON.parse(text).data.record).toStrictEqual(expected('object'));
  });
});
