/**
 * Rate limits count work, not requests (contract, "Cost, fairness and availability"): the
 * per-install token bucket is charged by the priced cost (one unit per statement plus one per ten
 * records), on GraphQL and on the Runner REST door alike, and each install has a bound on requests
 * in flight beyond which requests wait in arrival order, then get 429.
 */
import type { LogEvent } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dataOf, startTestApp, type GqlResult, type TestApp, type TestInstall } from '../support/app.js';
import { ADMISSION_UNITS, FairPool, InflightLimiter, RateLimiter } from '../../src/http/rate-limit.js';
import { RateLimitedError } from '../../src/storage/errors.js';
import { backend } from '../support/db.js';

const keys = Array.from({ length: 100 }, (_, i) => `k${String(i).padStart(3, '0')}`);
const RECORDS_100 = 'query($k: [String!]!) { records(namespace: "n", keys: $k) { key value } }';
const CHEAP = '{ install { id } }';
const BULK = 'mutation($input: BulkPutRecordsInput!) { bulkPutRecords(input: $input) { __typename } }';

function expectRateLimited(res: { status: number; headers: Headers; body: GqlResult['body'] }): number {
  expect(res.status).toBe(429);
  const retryAfter = Number(res.headers.get('retry-after'));
  expect(Number.isInteger(retryAfter) && retryAfter >= 1, `Retry-After: ${res.headers.get('retry-after')}`).toBe(true);
  expect(res.body.errors?.[0]?.extensions?.code).toBe('RATE_LIMITED');
  expect(res.body.data ?? null).toBeNull();
  return retryAfter;
}

async function seeded(t: TestApp, opts: Parameters<TestApp['createInstall']>[0] = {}): Promise<{ install: TestInstall; token: string }> {
  const install = await t.createInstall(opts);
  const token = await install.token();
  const items = keys.map((key) => ({ key, value: { pad: 'x'.repeat(10_000) } }));
  for (let i = 0; i < items.length; i += 50) {
    expect(dataOf(await t.gql(BULK, { input: { namespace: 'n', items: items.slice(i, i + 50) } }, { token })).bulkPutRecords.__typename).toBe('BulkPutRecordsSuccess');
  }
  return { install, token };
}

describe('the token bucket, charged by units', () => {
  it('takes a price at once, or nothing; a price above the burst takes the whole burst; admission units count', () => {
    let now = 0;
    const bucket = new RateLimiter(1, 30, () => now);
    expect(bucket.take('i', 11)).toBe(0);
    expect(bucket.take('i', 11)).toBe(0);
    expect(bucket.take('i', 11)).toBe(3); // 8 left: 3 more seconds
    expect(bucket.take('i', 8)).toBe(0);
    now += 2000;
    expect(bucket.take('i', ADMISSION_UNITS)).toBe(0);
    expect(bucket.take('i', 5, ADMISSION_UNITS)).toBe(3); // 1 left, 4 more needed at 1 per second
    now += 60_000;
    expect(bucket.take('i', ADMISSION_UNITS)).toBe(0);
    expect(bucket.take('i', 500, ADMISSION_UNITS)).toBe(0); // clamped to the burst of 30: all of it
    expect(bucket.take('i', 1)).toBe(1);
    expect(new RateLimiter(0, 5).take('i', 1000)).toBe(0);
  });

  it('is debited after the fact for bytes returned, down to minus one burst', () => {
    let now = 0;
    const bucket = new RateLimiter(10, 30, () => now);
    bucket.debit('i', 25);
    expect(bucket.take('i', 5)).toBe(0);
    expect(bucket.take('i', 1)).toBe(1);
    bucket.debit('i', 1000); // clamped at -30: three seconds to be back at 0
    expect(bucket.take('i', 1)).toBe(4);
    now += 3100;
    expect(bucket.take('i', 1)).toBe(0);
  });
});

describe('the process-wide response pool', () => {
  it('serves installs in turn, never skips a large request for a small one, and refuses after the wait', async () => {
    const pool = new FairPool(100, 200);
    const order: string[] = [];
    const take = (key: string, amount: number, label: string) =>
      Promise.resolve(pool.acquire(key, amount)).then((release) => {
        order.push(label);
        return release;
      });
    const first = (await take('a', 60, 'a1'))!;
    const waiting = [take('a', 60, 'a2'), take('a', 60, 'a3'), take('b', 60, 'b1'), take('c', 10, 'c1')];
    expect(pool.held).toBe(60);
    // c1 would fit, but it is behind the others: nothing is granted until a2 fits.
    await new Promise((r) => setTimeout(r, 10));
    expect(order).toEqual(['a1']);
    first();
    const a2 = await waiting[0]!;
    a2();
    const b1 = await waiting[2]!;
    // b1 was served before a3 (installs in turn); c1 fits beside b1.
    const c1 = await waiting[3]!;
    expect(order).toEqual(['a1', 'a2', 'b1', 'c1']);
    b1();
    c1();
    (await waiting[1]!)();
    expect(order).toEqual(['a1', 'a2', 'b1', 'c1', 'a3']);
    expect(pool.held).toBe(0);
    const hog = pool.acquire('a', 100) as () => void;
    await expect(pool.acquire('b', 1)).rejects.toBeInstanceOf(RateLimitedError);
    hog();
    hog();
    expect(pool.held).toBe(0);
  });
});

describe('requests in flight per install', () => {
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  it('beyond the bound, requests wait and are let in in arrival order', async () => {
    const limiter = new InflightLimiter(2, 1000);
    const order: string[] = [];
    const a = limiter.acquire('i');
    const b = limiter.acquire('i');
    expect(typeof a).toBe('function');
    expect(typeof b).toBe('function');
    const waiting = ['c', 'd', 'e'].map((name) => Promise.resolve(limiter.acquire('i')).then((release) => (order.push(name), release)));
    expect(limiter.load('i')).toEqual({ active: 2, waiting: 3 });
    expect(limiter.load('other')).toEqual({ active: 0, waiting: 0 });
    (a as () => void)();
    (a as () => void)(); // a second release of one slot changes nothing
    const c = await waiting[0]!;
    expect(limiter.load('i')).toEqual({ active: 2, waiting: 2 });
    (b as () => void)();
    c();
    const [d, e] = await Promise.all([waiting[1]!, waiting[2]!]);
    expect(order).toEqual(['c', 'd', 'e']);
    d();
    e();
    expect(limiter.load('i')).toEqual({ active: 0, waiting: 0 });
  });

  it('a request that waited too long gets RateLimitedError; one whose client left is dropped from the line', async () => {
    const limiter = new InflightLimiter(1, 30);
    const held = limiter.acquire('i') as () => void;
    const started = performance.now();
    await expect(limiter.acquire('i')).rejects.toBeInstanceOf(RateLimitedError);
    expect(performance.now() - started).toBeGreaterThanOrEqual(25);
    let cancel: () => void = () => {};
    const gone = limiter.acquire('i', (onCancel) => (cancel = onCancel));
    cancel();
    await expect(gone).rejects.toBeInstanceOf(RateLimitedError);
    expect(limiter.load('i')).toEqual({ active: 1, waiting: 0 });
    held();
    await sleep(1);
    expect(limiter.load('i')).toEqual({ active: 0, waiting: 0 });
  });

  it('0 means no bound', () => {
    const limiter = new InflightLimiter(0, 10);
    for (let i = 0; i < 100; i++) expect(typeof limiter.acquire('i')).toBe('function');
  });
});

describe('rate limit charged by the priced cost (1 per second, burst 30)', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ STORAGE_RATE_LIMIT_PER_SECOND: '1', STORAGE_RATE_LIMIT_BURST: '30' });
  });
  afterAll(async () => {
    await t?.close();
  });

  it('a 100-key read costs 11 units, a one-field read 1, a refused query only its admission', async () => {
    // No records needed: a read is priced by what it may return.
    const reader = await t.createInstall();
    const as = { token: await reader.token() };
    const costly = `query($k: [String!]!) { ${Array.from({ length: 11 }, (_, i) => `a${i}: records(namespace: "n", keys: $k) { key }`).join(' ')} }`;
    expect((await t.gql(costly, { k: keys }, as)).body.errors?.[0]?.extensions?.code).toBe('QUERY_TOO_COSTLY'); // 30 -> 29
    expect((await t.gql(RECORDS_100, { k: keys }, as)).status).toBe(200); // -> 18
    expect((await t.gql(RECORDS_100, { k: keys }, as)).status).toBe(200); // -> 7
    const limited = await t.gql(RECORDS_100, { k: keys }, as); // admission -> 6; 10 more needed
    expect(expectRateLimited(limited)).toBeGreaterThanOrEqual(3);
    expect(dataOf(await t.gql(CHEAP, {}, as)).install.id).toBe(reader.id); // 1 unit: served
  });

  it('a write of 300 records (33 units) takes the whole burst: the next 100-key read of the install waits', async () => {
    const writer = await t.createInstall();
    const as = { token: await writer.token() };
    const items = keys.map((key) => ({ key, value: 1 }));
    const three = `mutation($items: [BulkPutItem!]!) { ${[0, 1, 2].map((i) => `b${i}: bulkPutRecords(input: { namespace: "n", items: $items }) { __typename }`).join(' ')} }`;
    const res = await t.gql(three, { items }, as);
    expect(Object.values(dataOf(res)).every((r) => (r as { __typename: string }).__typename === 'BulkPutRecordsSuccess')).toBe(true);
    // 11 units, with at most a few seconds of refill since the write was charged.
    expectRateLimited(await t.gql(RECORDS_100, { k: keys }, as));
  });

  it('the bytes a request returned are charged after it ran: one unit per 64 KiB', async () => {
    const install = await t.createInstall();
    const as = { token: await install.token() };
    const items = Array.from({ length: 10 }, (_, i) => ({ key: `b${i}`, value: 'x'.repeat(65536 - 2) }));
    expect(dataOf(await t.gql(BULK, { input: { namespace: 'big', items } }, as)).bulkPutRecords.__typename).toBe('BulkPutRecordsSuccess'); // 30 -> 28
    const read = 'query($k: [String!]!) { records(namespace: "big", keys: $k) { key } }';
    const k = items.map((i) => i.key);
    // Priced 2 units (1 read, 10 records), then 10 units for 640 KiB returned.
    for (let i = 0; i < 3; i++) expect((await t.gql(read, { k }, as)).status).toBe(200); // 16, 4, then 2 - 10 = -8
    expect(expectRateLimited(await t.gql(CHEAP, {}, as))).toBeGreaterThanOrEqual(5);
  });

  it('the Runner REST door pays the same prices: list of 100 = 11 units, get = 1', async () => {
    const install = await t.createInstall();
    const rest = async (body: Record<string, unknown>) => {
      const res = await fetch(`${t.url}/api/internal/ext-storage/install/${install.id}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-runner-auth': t.runnerToken },
        body: JSON.stringify(body),
      });
      return { status: res.status, retryAfter: res.headers.get('retry-after'), body: (await res.json()) as { code?: string } };
    };
    expect((await rest({ operation: 'list', namespace: 'n', limit: 100 })).status).toBe(200); // 30 -> 19
    expect((await rest({ operation: 'list', namespace: 'n', limit: 100 })).status).toBe(200); // -> 8
    const limited = await rest({ operation: 'list', namespace: 'n', limit: 100 });
    expect(limited.status).toBe(429);
    expect(limited.body.code).toBe('RATE_LIMITED');
    expect(Number(limited.retryAfter)).toBeGreaterThanOrEqual(1);
    // A get of a missing record is served (404), not limited.
    expect((await rest({ operation: 'get', namespace: 'n', key: 'nope' })).status).toBe(404);
  });
});

describe('STORAGE_RATE_LIMIT_PER_SECOND=0 still turns the bucket off, whatever the cost', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ STORAGE_RATE_LIMIT_PER_SECOND: '0', STORAGE_RATE_LIMIT_BURST: '5' });
  });
  afterAll(async () => {
    await t?.close();
  });

  it('serves 40 reads of 100 keys in a row', async () => {
    const { token } = await seeded(t);
    for (let i = 0; i < 40; i++) expect((await t.gql(RECORDS_100, { k: keys }, { token })).status).toBe(200);
  });
});

describe('requests in flight per install, through the doors', () => {
  let t: TestApp;
  /** [start, end] of every records statement, by install id (performance.now of this process). */
  const spans = new Map<string, Array<[number, number]>>();
  const observe = (event: LogEvent) => {
    if (!/FROM ext_storage_records/.test(event.query.sql)) return;
    const id = event.query.parameters.find((p) => typeof p === 'string' && spans.has(p)) as string | undefined;
    if (!id) return;
    const end = performance.now();
    spans.get(id)!.push([end - event.queryDurationMillis, end]);
  };
  const mostAtOnce = (list: Array<[number, number]>) => {
    const points = list.flatMap(([s, e]) => [[s, 1] as const, [e, -1] as const]).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    let now = 0;
    let most = 0;
    for (const [, d] of points) most = Math.max(most, (now += d));
    return most;
  };

  beforeAll(async () => {
    t = await startTestApp({ STORAGE_MAX_INFLIGHT_PER_INSTALL: '2', STORAGE_INFLIGHT_WAIT_MS: '10000' }, [observe]);
  });
  afterAll(async () => {
    await t?.close();
  });

  it('24 concurrent reads of one install are all served (slowed, not refused), never more than 2 at once; another install is served meanwhile', async () => {
    const busy = await seeded(t);
    const quiet = await seeded(t);
    spans.set(busy.install.id, []);
    const [quietRes, ...burst] = await Promise.all([
      t.gql(RECORDS_100, { k: keys }, { token: quiet.token }),
      ...Array.from({ length: 24 }, () => t.gql(RECORDS_100, { k: keys }, { token: busy.token })),
    ]);
    expect(quietRes!.status).toBe(200);
    expect(burst.map((r) => r.status)).toEqual(Array(24).fill(200));
    const list = spans.get(busy.install.id)!;
    expect(list).toHaveLength(24);
    expect(mostAtOnce(list)).toBeLessThanOrEqual(2);
  });

  it('with no time to wait (STORAGE_INFLIGHT_WAIT_MS=0) the excess is refused with 429 and Retry-After, on GraphQL and REST', async () => {
    const strict = await startTestApp({ STORAGE_MAX_INFLIGHT_PER_INSTALL: '1', STORAGE_INFLIGHT_WAIT_MS: '0' });
    try {
      const { install, token } = await seeded(strict);
      const burst = await Promise.all(Array.from({ length: 20 }, () => strict.gql(RECORDS_100, { k: keys }, { token })));
      const served = burst.filter((r) => r.status === 200);
      const refused = burst.filter((r) => r.status !== 200);
      expect(served.length).toBeGreaterThanOrEqual(1);
      for (const r of refused) expectRateLimited(r);
      // PGlite runs every statement on this process's one thread, so a slot is given back before a
      // waiting request's timer can fire: requests never overlap long enough to be refused there.
      if (backend === 'pglite') return;
      expect(refused.length).toBeGreaterThanOrEqual(1);
      const rest = await Promise.all(
        Array.from({ length: 20 }, () =>
          fetch(`${strict.url}/api/internal/ext-storage/install/${install.id}`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', 'x-runner-auth': strict.runnerToken },
            body: JSON.stringify({ operation: 'list', namespace: 'n', limit: 100 }),
          }).then(async (res) => ({ status: res.status, retryAfter: res.headers.get('retry-after'), code: ((await res.json()) as { code?: string }).code })),
        ),
      );
      expect(rest.some((r) => r.status === 200)).toBe(true);
      const limited = rest.filter((r) => r.status !== 200);
      expect(limited.length).toBeGreaterThanOrEqual(1);
      for (const r of limited) expect([r.status, r.code, Number(r.retryAfter) >= 1]).toEqual([429, 'RATE_LIMITED', true]);
    } finally {
      await strict.close();
    }
  });
});
