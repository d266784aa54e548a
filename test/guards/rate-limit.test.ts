import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GqlResult } from '../support/app.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { extension, sleep } from './support.js';

const QUERY = '{ install { id } }';

function expectRateLimited(res: GqlResult): number {
  expect(res.status).toBe(429);
  const retryAfter = Number(res.headers.get('retry-after'));
  expect(Number.isInteger(retryAfter) && retryAfter >= 1, `Retry-After: ${res.headers.get('retry-after')}`).toBe(true);
  expect(res.body.errors?.[0]?.extensions?.code).toBe('RATE_LIMITED');
  expect(res.body.data ?? null).toBeNull();
  return retryAfter;
}

describe('per-install rate limit (5 per second, burst 5)', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ STORAGE_RATE_LIMIT_PER_SECOND: '5', STORAGE_RATE_LIMIT_BURST: '5' });
  });
  afterAll(async () => {
    await t?.close();
  });

  it('answers the excess of a 20-request burst with 429, Retry-After and RATE_LIMITED, while another install is served', async () => {
    const busy = await extension(t);
    const quiet = await extension(t);
    const started = performance.now();
    const [quietRes, ...burst] = await Promise.all([quiet.gql(QUERY), ...Array.from({ length: 20 }, () => busy.gql(QUERY))]);
    const seconds = (performance.now() - started) / 1000;

    expect(quietRes!.status).toBe(200);
    expect(quietRes!.body.data.install.id).toBe(quiet.install.id);

    const served = burst.filter((r) => r.status === 200);
    const limited = burst.filter((r) => r.status !== 200);
    for (const r of served) expect(r.body.data.install.id).toBe(busy.install.id);
    for (const r of limited) expectRateLimited(r);
    // The bucket starts full (5) and refills at 5 per second while the burst is in flight.
    expect(served.length).toBeGreaterThanOrEqual(5);
    expect(served.length).toBeLessThanOrEqual(5 + Math.ceil(seconds * 5));
    expect(limited.length).toBeGreaterThanOrEqual(20 - 5 - Math.ceil(seconds * 5));
    expect(limited.length).toBeGreaterThan(0);
  });

  it('charges the extension token and the Runner (GraphQL and REST) of one install to one bucket', async () => {
    const ext = await extension(t);
    const perDoor = 12;
    const runnerHeaders = { 'x-runner-auth': t.runnerToken, 'x-install-id': ext.install.id };
    const restGet = async () => {
      const res = await fetch(`${t.url}/api/internal/ext-storage/install/${ext.install.id}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-runner-auth': t.runnerToken },
        body: JSON.stringify({ operation: 'get', namespace: 'n', key: 'k' }),
      });
      return { status: res.status, retryAfter: res.headers.get('retry-after'), body: (await res.json()) as { code?: string } };
    };
    const started = performance.now();
    const [token, runner, rest] = await Promise.all([
      Promise.all(Array.from({ length: perDoor }, () => ext.gql(QUERY))),
      Promise.all(Array.from({ length: perDoor }, () => t.gql(QUERY, {}, { headers: runnerHeaders }))),
      Promise.all(Array.from({ length: perDoor }, restGet)),
    ]);
    const seconds = (performance.now() - started) / 1000;

    // A missing record is the REST door's 404: served, not limited.
    const served = [...token, ...runner].filter((r) => r.status === 200).length + rest.filter((r) => r.status === 404).length;
    const allowed = 5 + Math.ceil(seconds * 5);
    // Three separate buckets would have served 15 at once.
    expect(served).toBeLessThanOrEqual(allowed);
    for (const r of [...token, ...runner]) if (r.status !== 200) expectRateLimited(r);
    for (const r of rest) {
      if (r.status === 404) continue;
      expect(r.status).toBe(429);
      expect(Number(r.retryAfter)).toBeGreaterThanOrEqual(1);
      expect(r.body.code).toBe('RATE_LIMITED');
    }
    if (allowed < perDoor) {
      for (const door of [token.map((r) => r.status), runner.map((r) => r.status), rest.map((r) => r.status)]) expect(door).toContain(429);
    }
  });

  it('serves an install again once Retry-After has passed', async () => {
    const ext = await extension(t);
    const burst = await Promise.all(Array.from({ length: 12 }, () => ext.gql(QUERY)));
    const limited = burst.find((r) => r.status === 429);
    expect(limited).toBeDefined();
    const retryAfter = expectRateLimited(limited!);
    await sleep(retryAfter * 1000 + 100);
    const again = await ext.gql(QUERY);
    expect(again.status).toBe(200);
    expect(again.body.data.install.id).toBe(ext.install.id);
  });
});

describe('rate limit switched off (STORAGE_RATE_LIMIT_PER_SECOND=0)', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ STORAGE_RATE_LIMIT_PER_SECOND: '0', STORAGE_RATE_LIMIT_BURST: '5' });
  });
  afterAll(async () => {
    await t?.close();
  });

  it('serves a burst of 60 requests from one install without a single 429', async () => {
    const ext = await extension(t);
    const burst = await Promise.all(Array.from({ length: 60 }, () => ext.gql(QUERY)));
    expect(burst.map((r) => r.status)).toEqual(Array(60).fill(200));
    expect(burst.every((r) => r.body.data.install.id === ext.install.id)).toBe(true);
  });
});
