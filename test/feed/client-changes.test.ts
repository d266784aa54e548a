/** The typed client's change-feed methods (client/index.ts: changes, changesCursor) against a real gateway. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createStorageClient, type ChangesPage, type StorageClient, type StorageChange } from '../../client/index.js';
import { startTestApp, type TestApp } from '../support/app.js';

let t: TestApp;
let client: StorageClient;

beforeAll(async () => {
  t = await startTestApp();
  const install = await t.createInstall();
  client = createStorageClient({ url: t.url, token: await install.token() });
});

afterAll(async () => {
  await t?.close();
});

function ok<T extends { ok: boolean }>(r: T): Extract<T, { ok: true }> {
  expect(r.ok, JSON.stringify(r)).toBe(true);
  return r as Extract<T, { ok: true }>;
}

describe('client.changes', () => {
  it('pages the feed following cursor, with the current record, and resumes from changesCursor', async () => {
    const head = ok(await client.changesCursor()).cursor;
    for (let i = 0; i < 5; i++) ok(await client.put('prefs', `k${i}`, { i }));
    ok(await client.delete('prefs', 'k0'));

    const seen: StorageChange[] = [];
    let after: string | null = head;
    let pages = 0;
    for (;;) {
      const page: Extract<ChangesPage, { ok: true }> = ok(await client.changes({ after, pageSize: 2 }));
      seen.push(...page.changes);
      after = page.cursor;
      pages++;
      if (!page.hasMore) break;
    }
    expect(pages).toBe(3);
    expect(seen.map((c) => `${c.operation} ${c.key} ${c.revision}`)).toEqual(['PUT k0 1', 'PUT k1 1', 'PUT k2 1', 'PUT k3 1', 'PUT k4 1', 'DELETE k0 1']);
    expect(seen[0]!.record).toBeNull();
    expect(seen[1]!.record).toMatchObject({ namespace: 'prefs', key: 'k1', value: { i: 1 }, revision: 1 });
    expect(after).toBe(ok(await client.changesCursor()).cursor);

    // A filtered page with nothing in it still answers where to resume.
    const empty = ok(await client.changes({ namespace: 'other', after: head }));
    expect(empty.changes).toEqual([]);
    expect(empty.cursor).toBe(after);
  });

  it('answers errors as values: a foreign cursor BAD_USER_INPUT, a page too large LIMIT_EXCEEDED, prefix alone BAD_USER_INPUT', async () => {
    const bad = await client.changes({ after: 'garbage' });
    expect(bad.ok ? null : bad.error.code).toBe('BAD_USER_INPUT');
    const big = await client.changes({ pageSize: 1001 });
    expect(big.ok ? null : big.error).toMatchObject({ code: 'LIMIT_EXCEEDED', limit: 'pageSize' });
    const prefixOnly = await client.changes({ prefix: 'k' });
    expect(prefixOnly.ok ? null : prefixOnly.error.code).toBe('BAD_USER_INPUT');
  });
});
