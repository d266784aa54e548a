import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GqlResult } from '../support/app.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { dataOf, extension, rawPost, type Extension } from './support.js';

let t: TestApp;
let ext: Extension;
beforeAll(async () => {
  t = await startTestApp();
  ext = await extension(t);
});
afterAll(async () => {
  await t?.close();
});

/** The GraphQL-over-HTTP media type: request errors come back as HTTP 4xx. */
const SPEC = { accept: 'application/graphql-response+json' };

async function timedGql(query: string, variables: Record<string, unknown> = {}): Promise<GqlResult & { ms: number }> {
  const started = performance.now();
  const res = await t.gql(query, variables, { token: ext.token, headers: SPEC });
  return { ...res, ms: performance.now() - started };
}

async function expectStillServing(): Promise<void> {
  const res = await t.gql('{ install { id } }', {}, { token: ext.token });
  expect(dataOf(res).install.id).toBe(ext.install.id);
}

function nest(levels: number, wrap: (inner: string) => string, innermost: string): string {
  let q = innermost;
  for (let i = 0; i < levels; i++) q = wrap(q);
  return q;
}

const namedFragmentChain = (() => {
  const fragments = Array.from({ length: 45 }, (_, i) => `fragment F${i} on Record { key ${i < 44 ? `...F${i + 1}` : ''} }`);
  return `{ install { namespace(name: "a") { recordList { edges { node { ...F0 } } } } } } ${fragments.join('\n')}`;
})();

const abusive: Array<[string, string, RegExp]> = [
  ['2,000 aliases', `{ ${Array.from({ length: 2000 }, (_, i) => `a${i}: install { id }`).join(' ')} }`, /limit/i],
  ['40 aliases of a real field (limit 30)', `{ ${Array.from({ length: 40 }, (_, i) => `a${i}: install { id }`).join(' ')} }`, /Aliases limit/],
  [
    '50 levels on a valid path (install → namespace → recordList → nested inline fragments)',
    `{ install { namespace(name: "a") { recordList { edges { node { ${nest(45, (q) => `... on Record { ${q} }`, 'key')} } } } } } }`,
    /depth limit/,
  ],
  ['a chain of 45 named fragments', namedFragmentChain, /depth limit/],
  ['50 nested inline fragments around __typename', `{ ${nest(50, (q) => `... on Query { ${q} }`, '__typename')} }`, /depth limit/],
  ['a 50-deep __type introspection', `{ __type(name: "Install") { ${nest(16, (q) => `fields { type { ofType { ${q} } } }`, 'name')} } }`, /depth/],
  ['a 50-deep __schema introspection', `{ __schema { types { ${nest(16, (q) => `fields { type { ofType { ${q} } } }`, 'name')} } } }`, /depth/],
  ['30 directives on one field (limit 20)', `{ install { id ${Array.from({ length: 30 }, () => '@include(if: true)').join(' ')} } }`, /Directives limit/],
];

describe('abusive query shapes', () => {
  it.each(abusive)('refuses %s with HTTP 400 in under a second, and keeps serving', async (_label, query, message) => {
    const res = await timedGql(query);
    expect(res.ms).toBeLessThan(1000);
    expect(res.status).toBe(400);
    expect(res.body.data ?? null).toBeNull();
    expect(res.body.errors?.length).toBeGreaterThan(0);
    expect(['GRAPHQL_PARSE_FAILED', 'GRAPHQL_VALIDATION_FAILED']).toContain(res.body.errors![0]!.extensions?.code);
    expect(res.body.errors!.map((e) => e.message).join('\n')).toMatch(message);
    await expectStillServing();
  });
});

describe('oversized request bodies', () => {
  const body = Buffer.from(JSON.stringify({ query: '{ install { id } }', variables: { pad: 'x'.repeat(12 * 1024 * 1024) } }));

  it.each([
    ['with a Content-Length', false],
    ['chunked, without a Content-Length', true],
  ])('refuses a 12 MB body %s with 413 in under a second, and keeps serving', async (_label, chunked) => {
    // With a credential: the body is read (and refused) only after the credential was checked.
    const res = await rawPost(`${t.url}/graphql`, body, { chunked, token: ext.token });
    expect(res.ms).toBeLessThan(1000);
    expect(res.status).toBe(413);
    expect(JSON.parse(res.text).errors[0].extensions.code).toBe('PAYLOAD_TOO_LARGE');
    await expectStillServing();
  });
});

describe('query cost', () => {
  const keys = Array.from({ length: 100 }, (_, i) => `k${i}`);
  const RECORD = 'key value metadata revision';
  const costly = (readers: number, lists: number) => `query Costly($keys: [String!]!) {
    ${Array.from({ length: readers }, (_, i) => `r${i}: records(namespace: "a", keys: $keys) { ${RECORD} }`).join('\n')}
    ${Array.from({ length: lists }, (_, i) => `l${i}: recordList(namespace: "a", first: 100) { edges { cursor node { ${RECORD} } } }`).join('\n')}
  }`;

  it('refuses many 100-key reads and 100-record pages over the cost limit before reading anything', async () => {
    const res = await timedGql(costly(20, 8), { keys });
    expect(res.ms).toBeLessThan(1000);
    expect(res.status).toBe(400);
    expect(res.body.data ?? null).toBeNull();
    expect(res.body.errors?.[0]?.extensions?.code).toBe('QUERY_TOO_COSTLY');
    await expectStillServing();
  });

  it('prices lists by their real size, variables included: the same shape with a few keys is served', async () => {
    const res = await timedGql(costly(25, 5), { keys: keys.slice(0, 3) });
    const data = dataOf(res);
    expect(data.r0).toEqual([null, null, null]);
    expect(data.l0.edges).toEqual([]);
    const heavy = await timedGql(costly(25, 5), { keys });
    expect(heavy.body.errors?.[0]?.extensions?.code).toBe('QUERY_TOO_COSTLY');
  });

  it('serves one full nested page of 100 records with every field', async () => {
    const items = Array.from({ length: 100 }, (_, i) => ({ key: `p${String(i).padStart(3, '0')}`, value: { i } }));
    expect((dataOf(await ext.gql('mutation($items: [BulkPutItem!]!) { bulkPutRecords(input: { namespace: "page", items: $items }) { __typename } }', { items })).bulkPutRecords.__typename)).toBe('BulkPutRecordsSuccess');
    const res = await timedGql(`{ install { namespace(name: "page") { keyCount recordList(first: 100) {
      edges { cursor node { namespace key value metadata revision schemaVersion ttlExpiresAt createdAt updatedAt } }
      pageInfo { hasNextPage endCursor }
    } } } }`);
    const ns = dataOf(res).install.namespace;
    expect(ns.keyCount).toBe(100);
    expect(ns.recordList.edges.map((e: { node: { key: string } }) => e.node.key)).toEqual(items.map((i) => i.key));
    expect(ns.recordList.pageInfo.hasNextPage).toBe(false);
  });
});

describe('field suggestions', () => {
  it.each([
    ['a misspelled root field', '{ instal { id } }'],
    ['a misspelled nested field', '{ install { idd } }'],
    ['a misspelled argument', '{ recordList(namespace: "a", frist: 5) { pageInfo { hasNextPage } } }'],
    ['a misspelled type condition', '{ install { namespace(name: "a") { recordList { edges { node { ... on Recrd { key } } } } } } }'],
  ])('are not shown for %s', async (_label, query) => {
    const res = await timedGql(query);
    expect(res.status).toBe(400);
    expect(res.body.errors?.length).toBeGreaterThan(0);
    const text = JSON.stringify(res.body);
    expect(text).not.toMatch(/did you mean/i);
  });
});

describe('error responses', () => {
  it('never carry a stack trace or server paths', async () => {
    const graphql = `${t.url}/graphql`;
    const json = { 'content-type': 'application/json' };
    const bearer = { ...json, authorization: `Bearer ${ext.token}` };
    const responses: Array<[string, Promise<Response>]> = [
      ['no credential', fetch(graphql, { method: 'POST', headers: json, body: JSON.stringify({ query: '{ install { id } }' }) })],
      ['bad token', fetch(graphql, { method: 'POST', headers: { ...json, authorization: 'Bearer not.a.jwt' }, body: JSON.stringify({ query: '{ install { id } }' }) })],
      ['malformed JSON', fetch(graphql, { method: 'POST', headers: bearer, body: '{"query": "{ install { id } }"' })],
      ['a body that is not an object', fetch(graphql, { method: 'POST', headers: bearer, body: '[1, 2, 3]' })],
      ['a syntax error', fetch(graphql, { method: 'POST', headers: bearer, body: JSON.stringify({ query: '{ install { ' }) })],
      ['a wrong variable type', fetch(graphql, { method: 'POST', headers: bearer, body: JSON.stringify({ query: 'query($n: Int) { recordList(namespace: "a", first: $n) { pageInfo { hasNextPage } } }', variables: { n: 'ten' } }) })],
      ['a forbidden field', fetch(graphql, { method: 'POST', headers: bearer, body: JSON.stringify({ query: '{ installs { edges { cursor } } }' }) })],
      ['a malformed cursor', fetch(graphql, { method: 'POST', headers: bearer, body: JSON.stringify({ query: '{ recordList(namespace: "a", after: "%%%") { pageInfo { hasNextPage } } }' }) })],
      ['a page size out of range', fetch(graphql, { method: 'POST', headers: bearer, body: JSON.stringify({ query: '{ recordList(namespace: "a", first: 100000) { pageInfo { hasNextPage } } }' }) })],
      ['a mutation over GET', fetch(`${graphql}?query=${encodeURIComponent('mutation { deleteRecord(input: { namespace: "a", key: "k" }) { __typename } }')}`, { headers: bearer })],
      ['a Runner REST body that is not JSON', fetch(`${t.url}/api/internal/ext-storage/install/${ext.install.id}`, { method: 'POST', headers: { ...json, 'x-runner-auth': t.runnerToken }, body: '{oops' })],
    ];
    for (const [label, pending] of responses) {
      const res = await pending;
      const text = await res.text();
      expect(text, label).toMatch(/error/i);
      expect(text, label).not.toContain('"stack"');
      expect(text, label).not.toContain('at /');
      expect(text, label).not.toContain('node_modules');
      expect(text, label).not.toMatch(/\bat \w+ \(/);
    }
    const oversized = await rawPost(`${t.url}/graphql`, Buffer.alloc(5 * 1024 * 1024, 'x'));
    expect(oversized.text).not.toContain('"stack"');
    await expectStillServing();
  });
});
