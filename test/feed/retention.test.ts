/**
 * Retention and CURSOR_EXPIRED (docs/api.md, "Change feed", Retention): with a retention of one
 * second, a later write removes the older changes; a cursor before a removed change is
 * CURSOR_EXPIRED (a GraphQL error, no data), an up-to-date cursor never is however long the
 * install stays idle, and `after` omitted starts at the oldest retained change.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createStorageClient } from '../../client/index.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { extensionClient, sleep } from '../records/client.js';
import { CHANGES, changesPage, drain, feedErrorOf, headOf, type ChangeNode, type Gql } from './client.js';

let t: TestApp;

beforeAll(async () => {
  t = await startTestApp({ STORAGE_CHANGES_RETENTION_SECONDS: '1' });
});

afterAll(async () => {
  await t?.close();
});

/** Past the one-second retention. */
const PAST_RETENTION_MS = 2100;

const keys = (changes: ChangeNode[]) => changes.map((c) => `${c.operation} ${c.namespace}/${c.key}`);

describe('retention', () => {
  it('a cursor before a removed change is CURSOR_EXPIRED; one at the removal point is not; after omitted = the oldest retained', async () => {
    const c = await extensionClient(t);
    const admin: Gql = async (q, v) => t.gql(q, v, { token: await t.adminToken() });
    const start = await headOf(c.gql);
    await c.put({ namespace: 'a', key: 'k1', value: 1 });
    const afterFirst = await headOf(c.gql);
    await c.put({ namespace: 'a', key: 'k2', value: 1 });
    await c.put({ namespace: 'a', key: 'k3', value: 1 });
    const beforeLater = await headOf(c.gql);
    // Still retained: the old cursors work.
    expect(keys((await drain(c.gql, { after: start })).changes)).toEqual(['PUT a/k1', 'PUT a/k2', 'PUT a/k3']);

    await sleep(PAST_RETENTION_MS);
    await c.put({ namespace: 'b', key: 'later', value: 1 }); // removes k1..k3's changes

    for (const after of [start, afterFirst]) {
      const e = feedErrorOf(await c.gql(CHANGES, { after }));
      expect(e.code).toBe('CURSOR_EXPIRED');
      expect(e.message).not.toMatch(/SELECT|ext_storage/);
      // The same for a filter that matches nothing removed, and for the admin.
      expect(feedErrorOf(await c.gql(CHANGES, { after, namespace: 'b' })).code).toBe('CURSOR_EXPIRED');
      expect(feedErrorOf(await admin(CHANGES, { after, installId: c.install.id })).code).toBe('CURSOR_EXPIRED');
    }
    // The typed client answers it as a value.
    const client = createStorageClient({ url: t.url, token: c.token });
    const expired = await client.changes({ after: start });
    expect(expired.ok ? null : expired.error.code).toBe('CURSOR_EXPIRED');
    // Nothing after beforeLater was removed: it still works.
    expect(keys((await drain(c.gql, { after: beforeLater })).changes)).toEqual(['PUT b/later']);
    // Omitted: from the oldest retained change, no error.
    const oldest = await changesPage(c.gql);
    expect(keys(oldest.edges.map((e) => e.node))).toEqual(['PUT b/later']);
    expect(oldest.pageInfo.endCursor).toBe(await headOf(c.gql));
  });

  it('an up-to-date consumer never gets CURSOR_EXPIRED, idle past retention, filtered or not', async () => {
    const c = await extensionClient(t);
    await c.put({ namespace: 'a', key: 'k', value: 0 });
    let all = (await drain(c.gql)).cursor;
    // A consumer of a namespace nobody writes: its empty pages keep its cursor at the head.
    let quiet = (await drain(c.gql, { namespace: 'quiet' })).cursor;
    expect(quiet).toBe(all);

    for (let round = 1; round <= 2; round++) {
      await sleep(PAST_RETENTION_MS); // idle past retention
      expect((await changesPage(c.gql, { after: all })).edges).toEqual([]);
      await c.put({ namespace: 'a', key: 'k', value: round }); // removes the older changes

      const next = await drain(c.gql, { after: all });
      expect(keys(next.changes)).toEqual(['PUT a/k']);
      expect(next.changes[0]!.revision).toBe(round + 1);
      all = next.cursor;

      const quietNext = await drain(c.gql, { namespace: 'quiet', after: quiet });
      expect(quietNext.changes).toEqual([]);
      quiet = quietNext.cursor;
      expect(quiet).toBe(all);
    }
    // And the retained feed now starts at the last change: the older ones are gone.
    expect(keys((await drain(c.gql)).changes)).toEqual(['PUT a/k']);
  });
});
