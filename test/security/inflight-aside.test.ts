/**
 * The bound on an install's requests in flight (STORAGE_MAX_INFLIGHT_PER_INSTALL) counts requests
 * that may be using the database. A write queued behind its install's call in the write combiner
 * (src/storage/write-combiner.ts) holds no connection: it stands aside (InflightSlot.aside), its
 * place goes to the next request in line, and it takes a place back, ahead of newcomers and with no
 * time bound, once its call has answered. Before this, 16 writers of one install got at most 8 in
 * flight, and so batches of at most 7 (issue 12: the put benchmark's batches alternated 7 and 1).
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InflightLimiter, InflightSlot, type Release } from '../../src/http/rate-limit.js';
import { RateLimitedError } from '../../src/storage/errors.js';
import { startTestApp, type GqlResult, type TestApp } from '../support/app.js';
import { backend, waitForLockWait } from '../support/db.js';
import { extensionClient, GET, PUT, type ExtensionClient } from '../records/client.js';

const tick = () => new Promise((resolve) => setTimeout(resolve, 5));

function deferred<T = void>(): { promise: Promise<T>; resolve(value: T): void; reject(error: unknown): void } {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => ((resolve = res), (reject = rej)));
  return { promise, resolve, reject };
}

async function slotOf(limiter: InflightLimiter, install: string): Promise<InflightSlot> {
  return new InflightSlot(limiter, install, await limiter.acquire(install));
}

describe('InflightSlot.aside', () => {
  it('passes the place to the next in line while it waits, then takes one back ahead of those still waiting', async () => {
    const limiter = new InflightLimiter(1, 60_000);
    const a = await slotOf(limiter, 'i');
    const order: string[] = [];
    const b = Promise.resolve(limiter.acquire('i')).then((release) => (order.push('b'), release));
    await tick();
    expect(order).toEqual([]);
    const queued = deferred<string>();
    const aside = a.aside(queued.promise).then((v) => (order.push(`a:${v}`), v));
    const releaseB = await b;
    expect(order).toEqual(['b']);
    // C comes while B holds the place and A is aside.
    const c = Promise.resolve(limiter.acquire('i')).then((release) => (order.push('c'), release));
    queued.resolve('answered');
    await tick();
    // A waits for its place back (B holds it) and is ahead of C.
    expect(order).toEqual(['b']);
    expect(limiter.load('i')).toEqual({ active: 1, waiting: 2 });
    releaseB();
    expect(await aside).toBe('answered');
    expect(order).toEqual(['b', 'a:answered']);
    a.end();
    const releaseC: Release = await c;
    expect(order).toEqual(['b', 'a:answered', 'c']);
    releaseC();
    expect(limiter.load('i')).toEqual({ active: 0, waiting: 0 });
  });

  it('takes its place back with no time bound: what it waited for may have committed', async () => {
    const limiter = new InflightLimiter(1, 20);
    const a = await slotOf(limiter, 'i');
    const queued = deferred();
    const aside = a.aside(queued.promise);
    const releaseB = await limiter.acquire('i');
    queued.resolve();
    // Five times the limiter's wait bound: a newcomer would have been refused by now.
    await new Promise((resolve) => setTimeout(resolve, 100));
    await expect(Promise.resolve(limiter.acquire('i'))).rejects.toBeInstanceOf(RateLimitedError);
    releaseB();
    await aside;
    expect(limiter.load('i')).toEqual({ active: 1, waiting: 0 });
    a.end();
    a.end();
    expect(limiter.load('i')).toEqual({ active: 0, waiting: 0 });
  });

  it('a wait that fails still takes the place back (and fails); a request that ended meanwhile takes none', async () => {
    const limiter = new InflightLimiter(2, 60_000);
    const a = await slotOf(limiter, 'i');
    await expect(a.aside(Promise.reject(new Error('refused')))).rejects.toThrow('refused');
    expect(limiter.load('i')).toEqual({ active: 1, waiting: 0 });
    const queued = deferred();
    const aside = a.aside(queued.promise);
    expect(limiter.load('i')).toEqual({ active: 0, waiting: 0 });
    // The client went away (the response closed) while the write was queued.
    a.end();
    queued.resolve();
    await aside;
    expect(limiter.load('i')).toEqual({ active: 0, waiting: 0 });
  });
});

/**
 * Another session that takes the install's lock row: the install's next write call waits for it,
 * holding one place in flight, until `free`.
 */
async function lockHolder(t: TestApp, c: ExtensionClient) {
  const client = new pg.Client({ connectionString: t.database.url });
  await client.connect();
  const holder = {
    /** Takes the lock, sends a put of `key`, and returns once its call waits for the lock: its answer comes after `free`. */
    async holdWrite(key: string, value: number): Promise<{ answer: Promise<GqlResult> }> {
      await client.query('BEGIN');
      await client.query('SELECT 1 FROM ext_storage_install_locks WHERE tenant_id = $1 AND install_id = $2 FOR UPDATE', [c.install.tenantId, c.install.id]);
      const answer = c.gql(PUT, { input: { namespace: 'ns', key, value } });
      await waitForLockWait(t.database.url!);
      return { answer };
    },
    async free(): Promise<void> {
      await client.query('COMMIT');
    },
    /**
     * No place is kept by a request that is gone: with one taken by a held write, a read is let in
     * (with a bound of 2, a place kept would make it the third, refused at once).
     */
    async expectOnePlaceFree(key: string, value: number): Promise<void> {
      const held = await holder.holdWrite(key, value);
      expect((await c.gql(GET, { ns: 'ns', key })).status).toBe(200);
      await holder.free();
      expect((await held.answer).body.data.putRecord.record.value).toBe(value);
    },
    async close(): Promise<void> {
      await client.query('ROLLBACK').catch(() => undefined);
      await client.end();
    },
  };
  return holder;
}

/** An install with `key` written once, and the lock held by another session (lockHolder). */
async function installWithHolder(t: TestApp, key: string) {
  const c = await extensionClient(t);
  await c.put({ namespace: 'ns', key, value: 0 });
  return { c, holder: await lockHolder(t, c) };
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// Holding the install's lock row needs a second session: PGlite has one connection.
describe.skipIf(backend !== 'postgres')('writes queued behind their install\'s call (GraphQL and Runner REST)', () => {
  let t: TestApp;
  beforeAll(async () => {
    // Two in flight, and no waiting: a request beyond the bound is refused at once.
    t = await startTestApp({ STORAGE_MAX_INFLIGHT_PER_INSTALL: '2', STORAGE_INFLIGHT_WAIT_MS: '0' });
  });
  afterAll(async () => {
    await t?.close();
  });

  it('do not count against the bound: more writes and a read are let in while one call is held; all answer, in order', async () => {
    const { c, holder } = await installWithHolder(t, 'k');
    try {
      // The first write's call waits for the lock, holding one of the two places.
      const first = await holder.holdWrite('k', 1);
      // One at a time, so each is queued (and stands aside) before the next is sent.
      const queued: Array<Promise<{ status: number; revision?: number }>> = [];
      for (let i = 2; i <= 5; i++) {
        queued.push(c.gql(PUT, { input: { namespace: 'ns', key: 'k', value: i } }).then((r) => ({ status: r.status, revision: r.body.data?.putRecord?.record?.revision })));
        await pause(50);
      }
      queued.push(
        fetch(`${t.url}/api/internal/ext-storage/install/${c.install.id}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-runner-auth': t.runnerToken },
          body: JSON.stringify({ operation: 'put', namespace: 'ns', key: 'k', value: 6 }),
        }).then(async (res) => ({ status: res.status, revision: ((await res.json()) as { revision?: number }).revision })),
      );
      await pause(50);
      // A read is let in while five writes wait (without standing aside, it and writes 3-6 got 429).
      const read = await c.gql(GET, { ns: 'ns', key: 'k' });
      expect(read.status).toBe(200);
      expect(read.body.data.record).toMatchObject({ value: 0, revision: 1 });
      await holder.free();
      const firstRes = await first.answer;
      expect(firstRes.status).toBe(200);
      expect(firstRes.body.data.putRecord.record.revision).toBe(2);
      const rest = await Promise.all(queued);
      expect(rest.map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
      expect(rest.map((r) => r.revision)).toEqual([3, 4, 5, 6, 7]);
      expect(await c.get('ns', 'k')).toMatchObject({ value: 6, revision: 7 });
      await holder.expectOnePlaceFree('k', 7);
      expect(await c.get('ns', 'k')).toMatchObject({ value: 7, revision: 8 });
    } finally {
      await holder.close();
    }
  });

  it('a client that goes away while its write is queued: the write still runs (as any sent write), and its place is not taken back', async () => {
    const { c, holder } = await installWithHolder(t, 'gone');
    try {
      const first = await holder.holdWrite('gone', 1);
      const abort = new AbortController();
      const queued = fetch(`${t.url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${c.token}` },
        body: JSON.stringify({ query: PUT, variables: { input: { namespace: 'ns', key: 'gone', value: 2 } } }),
        signal: abort.signal,
      }).catch((error: unknown) => error);
      await pause(100);
      abort.abort();
      expect(await queued).toBeInstanceOf(Error);
      await pause(50);
      await holder.free();
      expect((await first.answer).body.data.putRecord.record.revision).toBe(2);
      // The queued write was sent before its client left: it is applied, like a lone write whose client hung up.
      for (const deadline = Date.now() + 5_000; Date.now() < deadline; await pause(20)) {
        if ((await c.get('ns', 'gone'))?.revision === 3) break;
      }
      expect(await c.get('ns', 'gone')).toMatchObject({ value: 2, revision: 3 });
      await holder.expectOnePlaceFree('gone', 3);
      expect(await c.get('ns', 'gone')).toMatchObject({ value: 3, revision: 4 });
    } finally {
      await holder.close();
    }
  });
});

// A hostile install sending many large writes at once: standing aside must not let its whole burst
// in (each body read in full) while its first call is held.
describe.skipIf(backend !== 'postgres')('writes beyond one call keep their place', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ STORAGE_MAX_INFLIGHT_PER_INSTALL: '2', STORAGE_INFLIGHT_WAIT_MS: '0', STORAGE_WRITE_COMBINE_MAX: '2' });
  });
  afterAll(async () => {
    await t?.close();
  });

  it('with calls of 2: two queued writes stand aside, the third keeps its place, and the next request is refused (429)', async () => {
    const { c, holder } = await installWithHolder(t, 'k');
    try {
      const first = await holder.holdWrite('k', 1);
      const queued: Array<Promise<GqlResult>> = [];
      for (let i = 2; i <= 4; i++) {
        queued.push(c.gql(PUT, { input: { namespace: 'ns', key: 'k', value: i } }));
        await pause(50);
      }
      // Places: the first write (in its call) and the fourth (queued beyond one call of 2): none left.
      const refused = await c.gql(GET, { ns: 'ns', key: 'k' });
      expect(refused.status).toBe(429);
      await holder.free();
      expect((await first.answer).status).toBe(200);
      expect((await Promise.all(queued)).map((r) => r.status)).toEqual([200, 200, 200]);
      expect(await c.get('ns', 'k')).toMatchObject({ value: 4, revision: 5 });
    } finally {
      await holder.close();
    }
  });
});
