/**
 * Issue 11: the GraphiQL page was rebuilt per request (9 MB, ~75 ms of CPU, unauthenticated, not
 * rate limited). It is a static asset now: built once, validators (ETag, Last-Modified, 304),
 * precompressed (br, gzip), cheap to serve, and rate limited per client address.
 */
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app.js';
import { mediaTypeOf, raw, type RawAnswer } from '../support/raw-http.js';

let t: TestApp;
let limited: TestApp;

beforeAll(async () => {
  [t, limited] = await Promise.all([
    // Generous here so the measurements below are not refused; `limited` checks the limit.
    startTestApp({ STORAGE_GRAPHIQL_RATE_LIMIT_PER_SECOND: '1000', STORAGE_GRAPHIQL_RATE_LIMIT_BURST: '1000' }),
    startTestApp({ STORAGE_GRAPHIQL_RATE_LIMIT_PER_SECOND: '1', STORAGE_GRAPHIQL_RATE_LIMIT_BURST: '5' }),
  ]);
});
afterAll(async () => {
  await Promise.all([t?.close(), limited?.close()]);
});

const page = (app: TestApp, headers: Array<[string, string]> = []) => raw(app.url, { target: '/graphql', headers: [['Accept', 'text/html'], ...headers], timeoutMs: 30_000 });

function html(res: RawAnswer): string {
  const encoding = res.header('content-encoding');
  const body = encoding === 'br' ? brotliDecompressSync(res.body) : encoding === 'gzip' ? gunzipSync(res.body) : res.body;
  return body.toString('utf8');
}

describe('the GraphiQL page is a static, cached asset', () => {
  it('is the same bytes every time, with an ETag and Last-Modified, and revalidated (no-cache)', async () => {
    const first = await page(t);
    const second = await page(t);
    expect(first.status).toBe(200);
    expect(mediaTypeOf(first)).toBe('text/html');
    expect(first.header('etag')).toMatch(/^"[A-Za-z0-9_-]+"$/);
    expect(second.header('etag')).toBe(first.header('etag'));
    expect(second.header('last-modified')).toBe(first.header('last-modified'));
    expect(Number.isNaN(Date.parse(first.header('last-modified') ?? ''))).toBe(false);
    expect(first.header('cache-control')).toMatch(/no-cache/);
    expect(first.header('vary')).toMatch(/Accept-Encoding/);
    expect(first.header('x-frame-options')).toBe('DENY');
    expect(first.body.equals(second.body)).toBe(true);
    expect(Number(first.header('content-length'))).toBe(first.body.length);
    expect(html(first)).toContain('Extension storage gateway');
  });

  it('answers 304 with no body to If-None-Match (any of its ETags, weak or not, or *) and to If-Modified-Since', async () => {
    const first = await page(t);
    const br = await page(t, [['Accept-Encoding', 'br']]);
    for (const tag of [first.header('etag')!, `W/${first.header('etag')}`, br.header('etag')!, `"other", ${first.header('etag')}`, '*']) {
      const res = await page(t, [['If-None-Match', tag]]);
      expect(res.status, tag).toBe(304);
      expect(res.body.length).toBe(0);
      expect(res.header('etag')).toBeDefined();
    }
    const since = await page(t, [['If-Modified-Since', first.header('last-modified')!]]);
    expect(since.status).toBe(304);
    const later = await page(t, [['If-Modified-Since', new Date(Date.now() + 60_000).toUTCString()]]);
    expect(later.status).toBe(304);
    // A stale validator gets the page.
    expect((await page(t, [['If-None-Match', '"stale"']])).status).toBe(200);
    expect((await page(t, [['If-Modified-Since', new Date(Date.parse(first.header('last-modified')!) - 3_600_000).toUTCString()]])).status).toBe(200);
  });

  it('is precompressed: br and gzip when accepted (each its own ETag), identity otherwise, all the same page', async () => {
    const identity = await page(t);
    const br = await page(t, [['Accept-Encoding', 'gzip, deflate, br']]);
    const gzip = await page(t, [['Accept-Encoding', 'gzip']]);
    const refusedBr = await page(t, [['Accept-Encoding', 'br;q=0, gzip']]);
    expect(identity.header('content-encoding')).toBeUndefined();
    expect(br.header('content-encoding')).toBe('br');
    expect(gzip.header('content-encoding')).toBe('gzip');
    expect(refusedBr.header('content-encoding')).toBe('gzip');
    expect(new Set([identity.header('etag'), br.header('etag'), gzip.header('etag')]).size).toBe(3);
    expect(br.body.length).toBeLessThan(identity.body.length / 3);
    expect(html(br)).toBe(identity.text);
    expect(html(gzip)).toBe(identity.text);
  });

  it('costs little CPU per request once built (the page used to cost ~75 ms each)', async () => {
    await page(t, [['Accept-Encoding', 'br']]);
    const n = 30;
    const before = process.cpuUsage();
    const started = performance.now();
    for (let i = 0; i < n; i++) {
      const res = await page(t, [['Accept-Encoding', i % 2 === 0 ? 'br' : 'gzip']]);
      expect(res.status).toBe(200);
    }
    const used = process.cpuUsage(before);
    // Server and client share this process: the figure includes reading the 2 MB answers.
    const cpuMsPerRequest = (used.user + used.system) / 1000 / n;
    process.stdout.write(`GraphiQL page: ${cpuMsPerRequest.toFixed(2)} ms CPU and ${((performance.now() - started) / n).toFixed(2)} ms wall per request (server and client)\n`);
    expect(cpuMsPerRequest).toBeLessThan(20);
  });
});

describe('the GraphiQL page is rate limited (per client address, and 10x that for the whole server)', () => {
  it('answers 429 RATE_LIMITED with Retry-After beyond the burst, in JSON', async () => {
    const answers: RawAnswer[] = [];
    for (let i = 0; i < 8; i++) answers.push(await page(limited, [['Accept-Encoding', 'br']]));
    const statuses = answers.map((a) => a.status);
    expect(statuses.slice(0, 5)).toEqual([200, 200, 200, 200, 200]);
    expect(statuses.slice(6)).toEqual([429, 429]);
    const refused = answers[7]!;
    expect(refused.json.errors[0].extensions.code).toBe('RATE_LIMITED');
    expect(mediaTypeOf(refused)).toBe('application/json');
    expect(Number(refused.header('retry-after'))).toBeGreaterThanOrEqual(1);
    // 304s count too: a validator does not make the page free of charge.
    expect((await page(limited, [['If-None-Match', '*']])).status).toBe(429);
  });

  it('does not limit GraphQL requests themselves (control)', async () => {
    const install = await limited.createInstall();
    const res = await limited.gql('{ __typename }', {}, { token: await install.token() });
    expect(res.status).toBe(200);
  });
});
