import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type GqlResult, type TestApp } from '../support/app.js';
import { dataOf, errorOf, extensionClient, LIST, NESTED_LIST, type ExtensionClient, type PageResult } from './client.js';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => {
  await t?.close();
});

/** Byte order of the UTF-8 encodings: what COLLATE "C" sorts by. */
const byteOrder = (a: string, b: string) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));

/** Keys whose byte order differs from locale order and from UTF-16 code-unit order. */
const SPECIAL_KEYS = [
  'B', 'a', '_', 'Z', 'é', '~', '0', '9', '10', '-', 'A', 'b', 'z', 'É', 'ä', ' space', '.dot',
  'a/b', 'a0', 'a/', 'ß', '中', '\uff5a' /* fullwidth z: after U+D7FF, before astral in UTF-8 */, '😀', 'Ω',
];
const ALL_KEYS = [...SPECIAL_KEYS, ...Array.from({ length: 57 - SPECIAL_KEYS.length }, (_, i) => `item/${String(i).padStart(2, '0')}`)];

type Variant = { name: string; fetch(c: ExtensionClient, vars: Record<string, unknown>): Promise<GqlResult>; pageOf(res: GqlResult): PageResult };

const VARIANTS: Variant[] = [
  {
    name: 'Query.recordList',
    fetch: (c, vars) => c.gql(LIST, vars),
    pageOf: (res) => dataOf(res).recordList,
  },
  {
    name: 'Install.namespace(name).recordList',
    fetch: (c, vars) => c.gql(NESTED_LIST, vars),
    pageOf: (res) => dataOf(res).install.namespace.recordList,
  },
];

async function seed(c: ExtensionClient, namespace: string, keys: readonly string[]): Promise<void> {
  for (let i = 0; i < keys.length; i += 100) {
    const result = await c.bulk(namespace, keys.slice(i, i + 100).map((key) => ({ key, value: { key } })));
    expect(result.__typename).toBe('BulkPutRecordsSuccess');
  }
}

describe.each(VARIANTS)('$name paging', (variant) => {
  let c: ExtensionClient;
  beforeAll(async () => {
    c = await extensionClient(t);
    await seed(c, 'paged', ALL_KEYS);
    await seed(c, 'other', ['x', 'y']);
    await seed(c, 'lit', ['a%b/1', 'a%bc', 'a_b/1', 'axb/1', 'aXb/1', 'a\\b/1', 'a\\x', 'ab']);
  });

  const page = async (vars: Record<string, unknown>) => variant.pageOf(await variant.fetch(c, vars));

  it('visits every key of 57 exactly once by first: 10, in byte order, over 6 pages', async () => {
    const expected = [...ALL_KEYS].sort(byteOrder);
    // The test means something only if byte order differs from locale and UTF-16 order.
    expect([...ALL_KEYS].sort((a, b) => a.localeCompare(b))).not.toEqual(expected);
    expect([...ALL_KEYS].sort()).not.toEqual(expected);

    const seen: string[] = [];
    const pages: PageResult[] = [];
    let after: string | undefined;
    for (let guard = 0; guard < 10; guard++) {
      const p = await page({ ns: 'paged', first: 10, after });
      pages.push(p);
      seen.push(...p.edges.map((e) => e.node.key));
      if (!p.pageInfo.hasNextPage) break;
      expect(p.pageInfo.endCursor).toBe(p.edges[p.edges.length - 1]!.cursor);
      after = p.pageInfo.endCursor!;
    }
    expect(pages.map((p) => p.edges.length)).toEqual([10, 10, 10, 10, 10, 7]);
    expect(pages.map((p) => p.pageInfo.hasNextPage)).toEqual([true, true, true, true, true, false]);
    expect(seen).toEqual(expected);
    expect(new Set(seen).size).toBe(57);
    for (const p of pages) for (const e of p.edges) expect(e.node.value).toEqual({ key: e.node.key });
  });

  it('defaults to 25 per page and takes 100', async () => {
    const expected = [...ALL_KEYS].sort(byteOrder);
    const first = await page({ ns: 'paged' });
    expect(first.edges.map((e) => e.node.key)).toEqual(expected.slice(0, 25));
    expect(first.pageInfo.hasNextPage).toBe(true);
    const all = await page({ ns: 'paged', first: 100 });
    expect(all.edges.map((e) => e.node.key)).toEqual(expected);
    expect(all.pageInfo.hasNextPage).toBe(false);
  });

  it('has no next page and a null endCursor when the namespace is empty', async () => {
    const empty = await page({ ns: 'nothing-here', first: 10 });
    expect(empty).toEqual({ edges: [], pageInfo: { hasNextPage: false, endCursor: null } });
  });

  it('an exactly full last page says hasNextPage false', async () => {
    const p = await page({ ns: 'other', first: 2 });
    expect(p.edges.map((e) => e.node.key)).toEqual(['x', 'y']);
    expect(p.pageInfo.hasNextPage).toBe(false);
  });

  it('filters by prefix, matching % and _ literally', async () => {
    const keysOf = async (prefix: string) => (await page({ ns: 'lit', prefix, first: 100 })).edges.map((e) => e.node.key);
    expect(await keysOf('a%b')).toEqual(['a%b/1', 'a%bc']);
    expect(await keysOf('a%b/')).toEqual(['a%b/1']);
    expect(await keysOf('a_b')).toEqual(['a_b/1']);
    expect(await keysOf('a\\')).toEqual(['a\\b/1', 'a\\x']);
    expect(await keysOf('axb')).toEqual(['axb/1']);
    expect(await keysOf('a')).toEqual(['a%b/1', 'a%bc', 'aXb/1', 'a\\b/1', 'a\\x', 'a_b/1', 'ab', 'axb/1']);
    expect(await keysOf('q')).toEqual([]);
  });

  it('pages within a prefix', async () => {
    const expected = ALL_KEYS.filter((k) => k.startsWith('item/')).sort(byteOrder);
    const seen: string[] = [];
    let after: string | undefined;
    for (let guard = 0; guard < 20; guard++) {
      const p = await page({ ns: 'paged', prefix: 'item/', first: 7, after });
      seen.push(...p.edges.map((e) => e.node.key));
      if (!p.pageInfo.hasNextPage) break;
      after = p.pageInfo.endCursor!;
    }
    expect(seen).toEqual(expected);
  });

  it('refuses first 0, -1 and 101 with LIMIT_EXCEEDED pageSize', async () => {
    for (const first of [0, -1, 101]) {
      const error = errorOf(await variant.fetch(c, { ns: 'paged', first }));
      expect(error.extensions).toMatchObject({ code: 'LIMIT_EXCEEDED', limit: 'pageSize', max: 100, actual: first });
    }
  });

  it('refuses a malformed cursor with BAD_USER_INPUT', async () => {
    const tampered = Buffer.from(JSON.stringify(['r', 'someone-else', 'k']), 'utf8').toString('base64url');
    for (const after of ['not a cursor!', '%%%', Buffer.from('not json').toString('base64url'), 'x'.repeat(5000), tampered]) {
      const error = errorOf(await variant.fetch(c, { ns: 'paged', first: 10, after }));
      expect(error.extensions.code).toBe('BAD_USER_INPUT');
    }
  });

  it('refuses a cursor from another namespace or another install with BAD_USER_INPUT', async () => {
    const fromOther = (await page({ ns: 'other', first: 1 })).pageInfo.endCursor!;
    expect(errorOf(await variant.fetch(c, { ns: 'paged', first: 10, after: fromOther })).extensions.code).toBe('BAD_USER_INPUT');

    const stranger = await extensionClient(t);
    await seed(stranger, 'paged', ['a', 'b']);
    const strangerCursor = variant.pageOf(await variant.fetch(stranger, { ns: 'paged', first: 1 })).pageInfo.endCursor!;
    expect(errorOf(await variant.fetch(c, { ns: 'paged', first: 10, after: strangerCursor })).extensions.code).toBe('BAD_USER_INPUT');
  });

  it('refuses a malformed namespace with LIMIT_EXCEEDED namespaceFormat', async () => {
    const error = errorOf(await variant.fetch(c, { ns: 'Paged', first: 10 }));
    expect(error.extensions).toMatchObject({ code: 'LIMIT_EXCEEDED', limit: 'namespaceFormat' });
  });
});

describe('paging while keys change', () => {
  it('a key deleted behind the cursor does not disturb the next page', async () => {
    const c = await extensionClient(t);
    await seed(c, 'ns', ['a', 'b', 'c', 'd', 'e']);
    const first = await c.list('ns', { first: 2 });
    expect(first.edges.map((e) => e.node.key)).toEqual(['a', 'b']);
    expect((await c.del({ namespace: 'ns', key: 'b' })).deleted).toBe(true);
    const second = await c.list('ns', { first: 2, after: first.pageInfo.endCursor! });
    expect(second.edges.map((e) => e.node.key)).toEqual(['c', 'd']);
  });
});
