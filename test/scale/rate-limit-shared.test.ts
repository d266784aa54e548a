/**
 * The shared rate limit (REDIS_URL, src/http/shared-rate-limit.ts): three gateway instances on one
 * PostgreSQL database and one Redis admit an install's requests within one burst of the documented
 * rate over 5 s in total (without REDIS_URL, each instance has its own bucket: about 3x); and what
 * happens while Redis is down (STORAGE_RATE_LIMIT_REDIS_FAILURE open or closed): the requests'
 * outcome, the metric, the log line and /readyz.
 *
 * Redis: the one at 127.0.0.1:6379 (REDIS_TEST_URL), each test with its own key prefix, removed at
 * the end; the outage tests start their own redis-server on a free port and stop it. Under CI=true
 * a missing Redis or redis-server fails the file (.ci/run installs and starts it).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:net';
import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';
import { openDatabase } from '../../src/db/database.js';
import { createApp, type App } from '../../src/http/server.js';
import { createLogger } from '../../src/logger.js';
import { backend } from '../support/db.js';
import { startTestApp, type TestApp } from '../support/app.js';

const REDIS_URL = process.env.REDIS_TEST_URL ?? 'redis://127.0.0.1:6379';
const RATE = 20;
const BURST = 40;
const ci = process.env.CI === 'true';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function redisUp(url: string): Promise<boolean> {
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: 1000, retryStrategy: () => null });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return (await client.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}

const hasRedis = await redisUp(REDIS_URL);
const hasRedisServer = spawnSync('redis-server', ['--version']).status === 0;
if (ci && (!hasRedis || !hasRedisServer)) throw new Error(`CI: Redis at ${REDIS_URL} and redis-server are required (.ci/run starts them)`);

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  await new Promise((r) => server.close(r));
  return port;
}

/** Removes every key under the prefix (the limiter's keys of one test). */
async function dropKeys(prefix: string): Promise<void> {
  const client = new Redis(REDIS_URL);
  try {
    const keys = await client.keys(`${prefix}*`);
    if (keys.length > 0) await client.del(...keys);
  } finally {
    client.disconnect();
  }
}

/** Log lines of one instance, parsed (the JSON logs). */
function capturingLogger(): { logger: pino.Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { logger: pino({ level: 'info' }, stream), lines };
}

async function metric(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return text
    .split('\n')
    .filter((l) => l.startsWith(name))
    .reduce((s, l) => s + Number(l.split(' ').pop()), 0);
}

async function readyz(url: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${url}/readyz`);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** `{ __typename }` as an extension: one unit (admission) and nothing more, so answers 200 = units admitted. */
async function typename(url: string, token: string): Promise<number> {
  const res = await fetch(`${url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: '{"query":"{ __typename }"}' });
  await res.arrayBuffer();
  return res.status;
}

describe('settings', () => {
  it('REDIS_URL turns the shared limit on (fail open by default); a bad URL or failure mode is refused without echoing the URL', () => {
    expect(loadConfig({}).rateLimit.redis).toBeUndefined();
    expect(loadConfig({ REDIS_URL: 'redis://127.0.0.1:6379/2' }).rateLimit.redis).toEqual({ url: 'redis://127.0.0.1:6379/2', failure: 'open', keyPrefix: 'ext_storage:rl' });
    expect(loadConfig({ REDIS_URL: 'rediss://h:1', STORAGE_RATE_LIMIT_REDIS_FAILURE: 'CLOSED', STORAGE_RATE_LIMIT_REDIS_PREFIX: 'p' }).rateLimit.redis).toMatchObject({ failure: 'closed', keyPrefix: 'p' });
    expect(() => loadConfig({ REDIS_URL: 'http://u:secret-pw@h:1' })).toThrow(ConfigError);
    expect(() => loadConfig({ REDIS_URL: 'http://u:secret-pw@h:1' })).not.toThrow(/secret-pw/);
    expect(() => loadConfig({ REDIS_URL: 'redis://h:1', STORAGE_RATE_LIMIT_REDIS_FAILURE: 'maybe' })).toThrow(/open or closed/);
  });
});

describe.runIf(hasRedis || ci)('shared rate limit (REDIS_URL)', () => {
  let t: TestApp;
  const started: App[] = [];

  /** One more gateway instance on the test database. */
  async function instance(env: Record<string, string>, logger = createLogger('silent')): Promise<App> {
    const config = loadConfig({
      NODE_ENV: 'test',
      STORAGE_JWT_SECRET: t.secret,
      RUNNER_AUTH_TOKENS: t.runnerToken,
      LOG_LEVEL: 'silent',
      STORAGE_RATE_LIMIT_PER_SECOND: String(RATE),
      STORAGE_RATE_LIMIT_BURST: String(BURST),
      ...(t.database.url ? { DATABASE_URL: t.database.url } : {}),
      ...env,
    });
    // PostgreSQL: a pool of its own on the one database; PGlite is one process, so its handle is shared.
    const database = backend === 'postgres' ? await openDatabase({ databaseUrl: t.database.url, pgliteDir: '', db: config.db }) : { ...t.database.handle, close: async () => undefined };
    const app = createApp({ config, database, logger, jwtSecret: t.secret });
    await app.listen(0, '127.0.0.1');
    started.push(app);
    return app;
  }

  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(async () => {
    for (const app of started.splice(0)) await app.close(2000);
    await t?.close();
  });

  /**
   * Sends `{ __typename }` round robin over the instances, 50 a second to each, for `seconds`;
   * returns the answers' statuses per instance and the time from the first send to the last answer.
   */
  async function flood(urls: string[], token: string, seconds: number): Promise<{ admitted: number[]; refused: number[]; other: number; span: number }> {
    const admitted = urls.map(() => 0);
    const refused = urls.map(() => 0);
    let other = 0;
    const pending: Array<Promise<void>> = [];
    const startedAt = performance.now();
    for (let tick = 0; performance.now() - startedAt < seconds * 1000; tick++) {
      urls.forEach((url, i) =>
        pending.push(
          typename(url, token).then((status) => {
            if (status === 200) admitted[i]!++;
            else if (status === 429) refused[i]!++;
            else other++;
          }),
        ),
      );
      await sleep(Math.max(0, startedAt + (tick + 1) * 20 - performance.now()));
    }
    await Promise.all(pending);
    // Until the last answer: a request sent last is charged when the instance gets to it.
    return { admitted, refused, other, span: (performance.now() - startedAt) / 1000 };
  }

  it.runIf(backend === 'postgres')('three instances on one database and one Redis admit one install within one burst of rate x 5 s; without Redis about 3x', async () => {
    const prefix = `test:rl:${randomUUID()}`;
    try {
      const shared = await Promise.all([0, 1, 2].map(() => instance({ REDIS_URL, STORAGE_RATE_LIMIT_REDIS_PREFIX: prefix })));
      const local = await Promise.all([0, 1, 2].map(() => instance({})));
      for (const app of shared) expect((await readyz(app.url())).status).toBe(200);

      const a = await t.createInstall();
      const s = await flood(shared.map((x) => x.url()), await a.token(), 5);
      const sharedTotal = s.admitted.reduce((x, y) => x + y, 0);
      // The documented bound: rate x seconds + one burst, whatever the instance count.
      const bound = RATE * s.span + BURST;
      expect(s.other).toBe(0);
      expect(sharedTotal, `admitted ${s.admitted.join('+')} over ${s.span.toFixed(2)} s`).toBeLessThanOrEqual(bound);
      // ... and it is the rate, not a refusal of everything: at least rate x seconds - one burst.
      expect(sharedTotal).toBeGreaterThanOrEqual(RATE * s.span - BURST);
      // Every instance took a share (round robin): the limit is one across them, not one instance's.
      for (const n of s.admitted) expect(n).toBeGreaterThan(0);

      const b = await t.createInstall();
      const l = await flood(local.map((x) => x.url()), await b.token(), 5);
      const localTotal = l.admitted.reduce((x, y) => x + y, 0);
      expect(l.other).toBe(0);
      // Each instance its own bucket: about 3 x (rate x seconds + burst), well above the shared bound.
      expect(localTotal, `admitted ${l.admitted.join('+')} over ${l.span.toFixed(2)} s`).toBeGreaterThan(2 * (RATE * l.span + BURST));
      for (const n of l.admitted) expect(n).toBeLessThanOrEqual(RATE * l.span + BURST);
      console.info(`shared: ${sharedTotal} admitted (${s.admitted.join('+')}) in ${s.span.toFixed(2)} s, bound ${Math.floor(bound)}; local: ${localTotal} (${l.admitted.join('+')})`);
    } finally {
      await dropKeys(prefix);
    }
  });

  describe.runIf(hasRedisServer || ci)('Redis going down while the gateway runs', () => {
    let redis: ChildProcess | undefined;
    let port: number;
    const startRedis = async () => {
      redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
      for (let i = 0; i < 50 && !(await redisUp(`redis://127.0.0.1:${port}`)); i++) await sleep(100);
    };
    const stopRedis = async () => {
      const child = redis;
      redis = undefined;
      if (!child || child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
    };
    beforeAll(async () => {
      port = await freePort();
    });
    afterAll(stopRedis);

    it('fail open (the default): requests go on under this instance\'s own bucket, counted, logged once, /readyz says so; back to shared when Redis returns', async () => {
      await startRedis();
      const { logger, lines } = capturingLogger();
      const app = await instance({ REDIS_URL: `redis://127.0.0.1:${port}`, STORAGE_RATE_LIMIT_REDIS_PREFIX: `test:rl:${randomUUID()}` }, logger);
      for (let i = 0; i < 50 && (await readyz(app.url())).body.redis !== undefined; i++) await sleep(100);
      expect(await readyz(app.url())).toEqual({ status: 200, body: { status: 'ready' } });
      const install = await t.createInstall();
      const token = await install.token();
      expect(await typename(app.url(), token)).toBe(200);
      expect(await metric(app.url(), 'ext_storage_rate_limit_backend_errors_total')).toBe(0);

      await stopRedis();
      // Open: the requests are decided by the local bucket (a full burst, then 429), not refused for Redis.
      const statuses: number[] = [];
      for (let i = 0; i < BURST + 20; i++) statuses.push(await typename(app.url(), token));
      expect(statuses.filter((s) => s !== 200 && s !== 429)).toEqual([]);
      expect(statuses.filter((s) => s === 200).length).toBeGreaterThanOrEqual(BURST);
      expect(statuses.filter((s) => s === 200).length).toBeLessThan(BURST + 20);
      expect(await metric(app.url(), 'ext_storage_rate_limit_backend_errors_total{operation="take"}')).toBeGreaterThanOrEqual(BURST);
      expect(await readyz(app.url())).toEqual({ status: 200, body: { status: 'ready', redis: 'unreachable', rateLimit: 'fail open: per-instance buckets' } });
      // Dozens of errors, one JSON line (at most one per 10 s), without the Redis URL.
      const warnings = lines.filter((l) => String(l.msg).includes('Redis unreachable'));
      expect(warnings.length).toBe(1);
      expect(warnings[0]).toMatchObject({ level: 40, failure: 'open' });
      expect(JSON.stringify(warnings[0])).not.toContain(`127.0.0.1:${port}`);

      // Redis back: the instance reconnects (within its 2 s backoff) and is shared again.
      await startRedis();
      let body: Record<string, unknown> = {};
      for (let i = 0; i < 50; i++) {
        body = (await readyz(app.url())).body;
        if (body.redis === undefined) break;
        await sleep(100);
      }
      expect(body).toEqual({ status: 'ready' });
      const before = await metric(app.url(), 'ext_storage_rate_limit_backend_errors_total{operation="take"}');
      expect(await typename(app.url(), (await (await t.createInstall()).token()))).toBe(200);
      expect(await metric(app.url(), 'ext_storage_rate_limit_backend_errors_total{operation="take"}')).toBe(before);
    });

    it('fail closed: 503 UNAVAILABLE on both doors, counted, and /readyz is 503 with the reason', async () => {
      const closedPort = await freePort();
      const app = await instance({ REDIS_URL: `redis://127.0.0.1:${closedPort}`, STORAGE_RATE_LIMIT_REDIS_FAILURE: 'closed', STORAGE_RATE_LIMIT_REDIS_PREFIX: `test:rl:${randomUUID()}` });
      const install = await t.createInstall();
      const res = await fetch(`${app.url()}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${await install.token()}` }, body: '{"query":"{ __typename }"}' });
      expect(res.status).toBe(503);
      expect(((await res.json()) as { errors: Array<{ extensions: { code: string } }> }).errors[0]!.extensions.code).toBe('UNAVAILABLE');
      const runner = await fetch(`${app.url()}/api/internal/ext-storage/install/${install.id}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-runner-auth': t.runnerToken },
        body: JSON.stringify({ operation: 'get', namespace: 'n', key: 'k' }),
      });
      await runner.arrayBuffer();
      expect(runner.status).toBe(503);
      expect(await metric(app.url(), 'ext_storage_rate_limit_backend_errors_total{operation="take"}')).toBe(2);
      expect(await readyz(app.url())).toEqual({ status: 503, body: { status: 'unavailable', redis: 'unreachable', rateLimit: 'fail closed' } });
      // Admins are not rate limited: their requests do not depend on Redis.
      const admin = await fetch(`${app.url()}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${await t.adminToken()}` }, body: '{"query":"{ __typename }"}' });
      expect(admin.status).toBe(200);
    });
  });
});
