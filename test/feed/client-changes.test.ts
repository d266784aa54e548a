/** The typed client's change-feed methods (client/index.ts: changes, changesCursor) against a real gateway. */
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createStorageClient, WatchError, type ChangesPage, type StorageClient, type StorageChange } from '../../client/index.js';
import { startTestApp, type TestApp, type TestInstall } from '../support/app.js';

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

describe('client.watch and token expiry', () => {
  /** A token the gateway accepts for about `seconds` more (exp in the past, within the 30 s clock tolerance). */
  async function expiringToken(install: TestInstall, seconds: number): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ tid: install.tenantId, role: 'extension', iid: install.id, scope: 'storage:read storage:write' })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setSubject('expiring')
      .setAudience('ext-storage')
      .setIssuedAt(now - 60)
      .setExpirationTime(now - 30 + seconds)
      .sign(new TextEncoder().encode(t.secret));
  }

  it('with a token function, goes on past the expiry of the token it started with, missing nothing', async () => {
    const install = await t.createInstall();
    const writer = createStorageClient({ url: t.url, token: await install.token() });
    let calls = 0;
    const first = await expiringToken(install, 4);
    const fresh = await install.token();
    // The subscription opens with the expiring token; every later request gets a fresh one.
    const watcher = createStorageClient({ url: t.url, token: () => (++calls === 1 ? first : fresh) });
    const head = ok(await writer.changesCursor()).cursor;
    const abort = new AbortController();
    const seen: string[] = [];
    const watching = (async () => {
      for await (const change of watcher.watch({ namespace: 'w', after: head, signal: abort.signal })) {
        seen.push(change.key);
        if (seen.length === 2) abort.abort();
      }
    })();
    // The first change arrives on the first token; the second after it expired (5.5 s later).
    const until = async (n: number) => {
      for (let i = 0; i < 100 && seen.length < n; i++) await new Promise((r) => setTimeout(r, 100));
    };
    await new Promise((r) => setTimeout(r, 300));
    ok(await writer.put('w', 'before', 1));
    await until(1);
    await new Promise((r) => setTimeout(r, 5_500));
    ok(await writer.put('w', 'after', 2));
    await watching;
    expect(seen).toEqual(['before', 'after']);
    // Reconnected once, on the token's expiry.
    expect(calls).toBe(2);
  });

  it('with a fixed token, ends with a WatchError UNAUTHENTICATED', async () => {
    const install = await t.createInstall();
    const watcher = createStorageClient({ url: t.url, token: await expiringToken(install, 2) });
    const error = await (async () => {
      try {
        for await (const _ of watcher.watch({ namespace: 'w' })) {
          // nothing is written
        }
      } catch (e) {
        return e;
      }
      return null;
    })();
    expect(error).toBeInstanceOf(WatchError);
    expect((error as WatchError).error.code).toBe('UNAUTHENTICATED');
  });
});
