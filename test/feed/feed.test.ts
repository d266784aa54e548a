/**
 * The change feed's contract over GraphQL (docs/api.md, "Change feed"): filters and the cursor a
 * filtered page advances, bounded scans, snapshot-then-follow, access, expiry changes, commit
 * cursors, the `record` field, and the errors (bad cursors, page sizes, prefix without namespace).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeCursor } from '../../src/storage/cursor.js';
import { dataOf, startTestApp, type TestApp } from '../support/app.js';
import { errorOf, extensionClient, sleep, type ExtensionClient } from '../records/client.js';
import { CHANGES, CHANGES_CURSOR, CHANGES_WITH_RECORDS, COMMIT, changesPage, drain, feedErrorOf, headOf, type ChangeNode, type Gql } from './client.js';

let t: TestApp;

beforeAll(async () => {
  t = await startTestApp({ STORAGE_MIN_TTL_SECONDS: '1' });
});

afterAll(async () => {
  await t?.close();
});

const summary = (changes: ChangeNode[]) => changes.map((c) => `${c.operation} ${c.namespace}/${c.key} ${c.revision}`);

async function adminGql(): Promise<Gql> {
  const token = await t.adminToken();
  return (query, variables) => t.gql(query, variables, { token });
}

describe('filters', () => {
  it('namespace and prefix select changes; the unfiltered feed holds them all in commit order', async () => {
    const c = await extensionClient(t);
    await c.put({ namespace: 'a', key: 'x/1', value: 1 });
    await c.put({ namespace: 'b', key: 'x/1', value: 1 });
    await c.put({ namespace: 'a', key: 'y/1', value: 1 });
    await c.put({ namespace: 'a', key: 'x/2', value: 1 });
    await c.del({ namespace: 'a', key: 'x/1' });
    await c.del({ namespace: 'a', key: 'never-there' }); // removes nothing: no change

    expect(summary((await drain(c.gql)).changes)).toEqual(['PUT a/x/1 1', 'PUT b/x/1 1', 'PUT a/y/1 1', 'PUT a/x/2 1', 'DELETE a/x/1 1']);
    expect(summary((await drain(c.gql, { namespace: 'a' })).changes)).toEqual(['PUT a/x/1 1', 'PUT a/y/1 1', 'PUT a/x/2 1', 'DELETE a/x/1 1']);
    expect(summary((await drain(c.gql, { namespace: 'a', prefix: 'x/' })).changes)).toEqual(['PUT a/x/1 1', 'PUT a/x/2 1', 'DELETE a/x/1 1']);
    expect(summary((await drain(c.gql, { namespace: 'b', prefix: 'y/' })).changes)).toEqual([]);
    // A small page size pages through the same sequence.
    expect(summary((await drain(c.gql, { namespace: 'a', first: 1 })).changes)).toEqual(['PUT a/x/1 1', 'PUT a/y/1 1', 'PUT a/x/2 1', 'DELETE a/x/1 1']);
  });

  it('an empty filtered page still advances endCursor to where the feed stands, so later pages start there', async () => {
    const c = await extensionClient(t);
    await c.put({ namespace: 'a', key: 'k', value: 1 });
    const start = await headOf(c.gql);
    for (let i = 0; i < 5; i++) await c.put({ namespace: 'b', key: `k${i}`, value: i });

    const empty = await changesPage(c.gql, { namespace: 'a', after: start });
    expect(empty.edges).toEqual([]);
    expect(empty.pageInfo.startCursor).toBeNull();
    expect(empty.pageInfo.hasNextPage).toBe(false);
    expect(empty.pageInfo.endCursor).not.toBe(start);
    // It is the head: nothing unfiltered lies after it, and it equals Install.changesCursor.
    expect(empty.pageInfo.endCursor).toBe(await headOf(c.gql));
    expect((await drain(c.gql, { after: empty.pageInfo.endCursor })).changes).toEqual([]);

    await c.put({ namespace: 'a', key: 'k', value: 2 });
    expect(summary((await drain(c.gql, { namespace: 'a', after: empty.pageInfo.endCursor })).changes)).toEqual(['PUT a/k 2']);
  });

  it('a page scans a bounded window: while unscanned changes remain hasNextPage is true and endCursor moves on', async () => {
    const c = await extensionClient(t);
    const limits = t.config.limits;
    const window = limits.changesScanWindow;
    // The same object the core reads (src/http/server.ts passes the config as its settings): a window of 10 for this test.
    limits.changesScanWindow = 10;
    try {
      await c.put({ namespace: 'a', key: 'first', value: 1 });
      const start = await headOf(c.gql);
      await c.bulk('b', Array.from({ length: 25 }, (_, i) => ({ key: `k${i}`, value: i })));
      await c.put({ namespace: 'a', key: 'last', value: 1 });

      const p1 = await changesPage(c.gql, { namespace: 'a', after: start });
      expect(p1.edges).toEqual([]);
      expect(p1.pageInfo.hasNextPage).toBe(true);
      const p2 = await changesPage(c.gql, { namespace: 'a', after: p1.pageInfo.endCursor });
      expect(p2.edges).toEqual([]);
      expect(p2.pageInfo.hasNextPage).toBe(true);
      expect(p2.pageInfo.endCursor).not.toBe(p1.pageInfo.endCursor);
      // Following endCursor reaches the one matching change and then the head.
      const rest = await drain(c.gql, { namespace: 'a', after: p2.pageInfo.endCursor });
      expect(summary(rest.changes)).toEqual(['PUT a/last 1']);
      expect(rest.cursor).toBe(await headOf(c.gql));
      // Unfiltered, a page is full before its window ends.
      expect((await changesPage(c.gql, { after: start, first: 5 })).edges).toHaveLength(5);
    } finally {
      limits.changesScanWindow = window;
    }
  });
});

describe('snapshot, then follow', () => {
  it('changesCursor, recordList, then changes(after) while writers keep writing: the local copy equals the server', async () => {
    const c = await extensionClient(t);
    for (let i = 0; i < 30; i++) await c.put({ namespace: i % 2 ? 'a' : 'b', key: `k${i % 10}`, value: { i } });

    let writing = true;
    const writers = Promise.all(
      Array.from({ length: 4 }, async (_, w) => {
        for (let i = 0; i < 25; i++) {
          const ns = (w + i) % 2 ? 'a' : 'b';
          const key = `k${(w * 7 + i * 3) % 12}`;
          if (i % 4 === 3) await c.del({ namespace: ns, key });
          else await c.put({ namespace: ns, key, value: { w, i } });
        }
      }),
    ).finally(() => {
      writing = false;
    });

    const local = new Map<string, { value: unknown; revision: number }>();
    const head = await headOf(c.gql);
    for (const ns of ['a', 'b']) {
      let after: string | undefined;
      for (;;) {
        const page = await c.list(ns, { first: 5, after });
        for (const e of page.edges) local.set(`${ns}/${e.node.key}`, { value: e.node.value, revision: e.node.revision });
        if (!page.pageInfo.hasNextPage) break;
        after = page.pageInfo.endCursor!;
      }
    }
    const apply = (changes: ChangeNode[]) => {
      for (const ch of changes) {
        if (ch.record) local.set(`${ch.namespace}/${ch.key}`, { value: ch.record.value, revision: ch.record.revision });
        else local.delete(`${ch.namespace}/${ch.key}`);
      }
    };
    let cursor = head;
    let followed = 0;
    while (writing) {
      const page = await changesPage(c.gql, { after: cursor, first: 7 }, CHANGES_WITH_RECORDS);
      apply(page.edges.map((e) => e.node));
      followed += page.edges.length;
      cursor = page.pageInfo.endCursor;
    }
    await writers;
    const rest = await drain(c.gql, { after: cursor, first: 7 }, CHANGES_WITH_RECORDS);
    apply(rest.changes);
    followed += rest.changes.length;
    expect(followed).toBeGreaterThan(0);

    const server = new Map<string, { value: unknown; revision: number }>();
    for (const ns of ['a', 'b']) {
      for (const e of (await c.list(ns, { first: 100 })).edges) server.set(`${ns}/${e.node.key}`, { value: e.node.value, revision: e.node.revision });
    }
    expect(Object.fromEntries([...local].sort())).toEqual(Object.fromEntries([...server].sort()));
  });
});

describe('the record field', () => {
  it('is the record as it is now on every change of its key, and null once it is gone', async () => {
    const c = await extensionClient(t);
    await c.put({ namespace: 'a', key: 'k', value: 'one' });
    await c.put({ namespace: 'a', key: 'k', value: 'two', metadata: { m: 1 } });
    await c.put({ namespace: 'b', key: 'other', value: 'stays' });
    let changes = (await drain(c.gql, {}, CHANGES_WITH_RECORDS)).changes;
    expect(changes.map((ch) => ch.record)).toEqual([
      { namespace: 'a', key: 'k', value: 'two', revision: 2 },
      { namespace: 'a', key: 'k', value: 'two', revision: 2 },
      { namespace: 'b', key: 'other', value: 'stays', revision: 1 },
    ]);
    await c.del({ namespace: 'a', key: 'k' });
    changes = (await drain(c.gql, {}, CHANGES_WITH_RECORDS)).changes;
    expect(summary(changes)).toEqual(['PUT a/k 1', 'PUT a/k 2', 'PUT b/other 1', 'DELETE a/k 2']);
    expect(changes.map((ch) => ch.record?.value ?? null)).toEqual([null, null, 'stays', null]);
  });
});

describe('expiry changes', () => {
  it('a record with a TTL removed by a later write shows as EXPIRE by "system", of the revision it had, before that write', async () => {
    const c = await extensionClient(t);
    await c.put({ namespace: 'a', key: 'brief', value: 1 });
    await c.put({ namespace: 'a', key: 'brief', value: 2, ttlSeconds: 1 });
    await sleep(1500);
    await c.put({ namespace: 'b', key: 'later', value: 1 });
    const changes = (await drain(c.gql, {}, CHANGES_WITH_RECORDS)).changes;
    expect(summary(changes)).toEqual(['PUT a/brief 1', 'PUT a/brief 2', 'EXPIRE a/brief 2', 'PUT b/later 1']);
    const expired = changes[2]!;
    expect(expired.actor).toBe('system');
    expect(expired.record).toBeNull();
    expect(changes[3]!.actor).toBe(`ext-${c.install.id.slice(0, 8)}`);
  });
});

describe('commits', () => {
  it("a commit's changes are adjacent, and changes(after: CommitSuccess.cursor) starts right after them", async () => {
    const c = await extensionClient(t);
    let writing = true;
    const others = Promise.all(
      Array.from({ length: 4 }, async (_, w) => {
        for (let i = 0; writing && i < 200; i++) await c.put({ namespace: 'noise', key: `w${w}`, value: i });
      }),
    );
    const cursors: string[] = [];
    try {
      for (let i = 0; i < 5; i++) {
        const r = dataOf(
          await c.gql(COMMIT, {
            input: {
              operations: [
                { put: { namespace: 'a', key: `c${i}-1`, value: i } },
                { put: { namespace: 'b', key: `c${i}-2`, value: i } },
                { increment: { namespace: 'a', key: `c${i}-3`, by: 1 } },
              ],
            },
          }),
        ).commit;
        expect(r.__typename).toBe('CommitSuccess');
        expect(r.committed).toBe(true);
        cursors.push(r.cursor);
      }
    } finally {
      writing = false;
      await others;
    }
    const all = (await drain(c.gql, { first: 1000 })).changes;
    for (let i = 0; i < 5; i++) {
      const at = all.findIndex((ch) => ch.key === `c${i}-1`);
      expect(summary(all.slice(at, at + 3))).toEqual([`PUT a/c${i}-1 1`, `PUT b/c${i}-2 1`, `PUT a/c${i}-3 1`]);
      const after = (await drain(c.gql, { after: cursors[i]!, first: 1000 })).changes;
      expect(after.map((ch) => ch.cursor)).toEqual(all.slice(at + 3).map((ch) => ch.cursor));
    }
  });

  it('a dry run answers no cursor and adds no change', async () => {
    const c = await extensionClient(t);
    const head = await headOf(c.gql);
    const r = dataOf(await c.gql(COMMIT, { input: { dryRun: true, operations: [{ put: { namespace: 'a', key: 'k', value: 1 } }] } })).commit;
    expect(r).toMatchObject({ __typename: 'CommitSuccess', committed: false, cursor: null });
    expect(await headOf(c.gql)).toBe(head);
    expect((await drain(c.gql)).changes).toEqual([]);
  });
});

describe('access', () => {
  it('an extension restricted to some namespaces sees only their changes; naming another is FORBIDDEN', async () => {
    const c = await extensionClient(t, { namespaces: ['mine', 'shared'] });
    const admin = await adminGql();
    const PUT_AS_ADMIN = `mutation($input: PutRecordInput!) { putRecord(input: $input) { __typename } }`;
    for (const ns of ['mine', 'theirs', 'shared', 'theirs']) {
      dataOf(await admin(PUT_AS_ADMIN, { input: { installId: c.install.id, namespace: ns, key: 'k', value: ns } }));
    }
    await c.put({ namespace: 'mine', key: 'own', value: 1 });

    expect(summary((await drain(c.gql, { first: 1 })).changes)).toEqual(['PUT mine/k 1', 'PUT shared/k 1', 'PUT mine/own 1']);
    expect(feedErrorOf(await c.gql(CHANGES, { namespace: 'theirs' })).code).toBe('FORBIDDEN');
    expect(feedErrorOf(await c.gql(CHANGES, { namespace: 'theirs', prefix: 'k' })).code).toBe('FORBIDDEN');
    // The admin sees the whole install, by its id.
    expect(summary((await drain(admin, { installId: c.install.id })).changes)).toEqual([
      'PUT mine/k 1',
      'PUT theirs/k 1',
      'PUT shared/k 1',
      'PUT theirs/k 2',
      'PUT mine/own 1',
    ]);
    // The admin's cursors are the extension's: the same position, whoever reads.
    expect(await headOf(admin, c.install.id)).toBe(await headOf(c.gql));
  });

  it('without read capability (token scope or install) changes and changesCursor are FORBIDDEN; another install is FORBIDDEN', async () => {
    const c = await extensionClient(t);
    await c.put({ namespace: 'a', key: 'k', value: 1 });
    const writeOnly = await c.install.token('storage:write');
    expect(feedErrorOf(await t.gql(CHANGES, {}, { token: writeOnly })).code).toBe('FORBIDDEN');
    expect(errorOf(await t.gql(CHANGES_CURSOR, {}, { token: writeOnly })).extensions.code).toBe('FORBIDDEN');

    const noRead = await t.createInstall({ canRead: false });
    const noReadToken = await noRead.token();
    expect(feedErrorOf(await t.gql(CHANGES, {}, { token: noReadToken })).code).toBe('FORBIDDEN');
    expect(errorOf(await t.gql(CHANGES_CURSOR, {}, { token: noReadToken })).extensions.code).toBe('FORBIDDEN');

    const other = await extensionClient(t);
    expect(feedErrorOf(await other.gql(CHANGES, { installId: c.install.id })).code).toBe('FORBIDDEN');
  });
});

describe('errors', () => {
  let c: ExtensionClient;
  beforeAll(async () => {
    c = await extensionClient(t);
    await c.put({ namespace: 'a', key: 'k', value: 1 });
  });

  it('a malformed cursor, another install\'s cursor or a cursor of another list is BAD_USER_INPUT', async () => {
    const other = await extensionClient(t);
    await other.put({ namespace: 'a', key: 'k', value: 1 });
    const foreign = await headOf(other.gql);
    const listCursor = (await c.list('a', { first: 1 })).edges[0]!.cursor;
    for (const after of ['garbage', foreign, listCursor, `${(await headOf(c.gql)).slice(0, -2)}zz`]) {
      expect(feedErrorOf(await c.gql(CHANGES, { after })).code, after).toBe('BAD_USER_INPUT');
    }
  });

  it('a forged position of the install itself (past its head, negative, fractional) is BAD_USER_INPUT', async () => {
    // Cursors are opaque to clients; this test forges them the way the core writes them.
    for (const position of [1_000_000, -1, 1.5]) {
      const after = encodeCursor('c', c.install.id, position);
      expect(feedErrorOf(await c.gql(CHANGES, { after })).code, String(position)).toBe('BAD_USER_INPUT');
    }
    // The same encoding of a real position is accepted: the refusals above are about the position.
    expect(await headOf(c.gql)).toBe(encodeCursor('c', c.install.id, 1));
  });

  it('first outside 1..1000 is LimitExceeded pageSize; prefix without namespace is BAD_USER_INPUT', async () => {
    for (const first of [0, -1, 1001]) {
      const e = feedErrorOf(await c.gql(CHANGES, { first }));
      expect(e.code).toBe('LIMIT_EXCEEDED');
      expect(e.extensions.limit).toBe('pageSize');
      expect(e.extensions.max).toBe(1000);
    }
    expect((await changesPage(c.gql, { first: 1000 })).edges.length).toBeGreaterThan(0);
    expect(feedErrorOf(await c.gql(CHANGES, { prefix: 'k' })).code).toBe('BAD_USER_INPUT');
  });

  it('errors carry no stack, SQL or internals', async () => {
    const res = await c.gql(CHANGES, { after: 'garbage' });
    const text = JSON.stringify(res.body);
    expect(text).not.toMatch(/stack|SELECT|ext_storage|at .*\.ts/);
  });
});
