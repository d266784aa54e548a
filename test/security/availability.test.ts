/**
 * Availability under the worst requests of issue 11 (contract, "Cost, fairness and availability").
 *
 * The gateway runs as its own process (`src/main.ts`, NODE_ENV=production, default limits), so its
 * RSS is its own; the attacker's 24 connections and the other tenant's loop each run in a process of
 * their own too. One extension sends 24 requests at once, over and over: first the findings as they
 * were found (30 aliases of records(keys: $k) with 100 copies of one 64 KB key; the same under
 * Install.namespaces), then the worst shapes the limits still let through (up to 1,000 records of
 * 64 KB: answers that stop at the 16 MiB budget, 13 MB answers served in full, the same under
 * Install.namespaces). Meanwhile another tenant reads one key in a loop. The process must stay up,
 * its RSS must stay under 512 MiB above its idle size and the other tenant's p95 under 250 ms.
 * On PostgreSQL the same runs again with the rate limiter off (STORAGE_RATE_LIMIT_PER_SECOND=0),
 * where only the bound on requests in flight, the response budget and the response pool stand:
 * memory and liveness are asserted there, its latency is printed.
 *
 * A timing threshold, required by issue 11: it is generous and taken over hundreds of samples. On
 * PGlite the database runs on the gateway's own thread, so every tenant's statements queue behind
 * the attacker's on one thread and the latency says nothing about the gateway's isolation: there the
 * p95 is printed, not asserted (memory and liveness are asserted on both backends).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mintToken } from '../../src/auth/credentials.js';
import { backend, openTestDatabase, type TestDatabase } from '../support/db.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const MiB = 1024 * 1024;
const RSS_HEADROOM = 512 * MiB;
const P95_LIMIT_MS = 250;
const CONCURRENT = 24;
const PHASE_MS = 8000;

/** A value whose JSON text is 64 KB exactly. */
const BIG = 'x'.repeat(65536 - 2);
const NAMESPACES = Array.from({ length: 32 }, (_, i) => `n${String(i).padStart(2, '0')}`);
/** 100 distinct 64 KB keys in n00, 31 in every other namespace (the most a page under namespaces may ask for). */
const keysOf = (ns: string) => Array.from({ length: ns === 'n00' ? 100 : 31 }, (_, i) => `k${String(i).padStart(3, '0')}`);
const aliases = (n: number, field: string) => Array.from({ length: n }, (_, i) => `a${i}: ${field}`).join('\n');

interface Attack {
  name: string;
  query: string;
  variables: Record<string, unknown>;
}

const FINDINGS: Attack[] = [
  {
    name: '30 aliases x records(keys: 100 copies of one 64 KB key)',
    query: `query($k: [String!]!) { ${aliases(30, 'records(namespace: "n00", keys: $k) { key value metadata revision }')} }`,
    variables: { k: Array.from({ length: 100 }, () => 'k000') },
  },
  {
    name: 'the same under Install.namespaces',
    query: `query($k: [String!]!) { install { namespaces { name ${aliases(30, 'records(keys: $k) { key value }')} } } }`,
    variables: { k: Array.from({ length: 100 }, () => 'k000') },
  },
];

const WORST_ALLOWED: Attack[] = [
  {
    name: '10 aliases x records(100 distinct 64 KB keys): 1,000 records, stops at 16 MiB',
    query: `query($k: [String!]!) { ${aliases(10, 'records(namespace: "n00", keys: $k) { key value }')} }`,
    variables: { k: keysOf('n00') },
  },
  {
    name: '2 aliases x records(100 distinct 64 KB keys): a 13 MB answer, served',
    query: `query($k: [String!]!) { ${aliases(2, 'records(namespace: "n00", keys: $k) { key value }')} }`,
    variables: { k: keysOf('n00') },
  },
  {
    name: 'Install.namespaces x records(31 distinct 64 KB keys): 992 records, stops at 16 MiB',
    query: `query($k: [String!]!) { install { namespaces { name records(keys: $k) { key value } } } }`,
    variables: { k: keysOf('n01') },
  },
];

interface Gateway {
  child: ChildProcess;
  url: string;
  pid: number;
}

function startGateway(env: Record<string, string>): Promise<Gateway> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new Promise((resolve, reject) => {
    let buffered = '';
    let stderr = '';
    const timer = setTimeout(() => reject(new Error(`gateway did not start: ${stderr.slice(-2000)}`)), 60_000);
    child.stderr!.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-10_000)));
    child.once('exit', (code) => reject(new Error(`gateway exited (${code}) before listening: ${stderr.slice(-2000)}`)));
    const onData = (chunk: Buffer) => {
      buffered += chunk.toString();
      for (const line of buffered.split('\n')) {
        if (!line.includes('"listening"')) continue;
        const url = (JSON.parse(line) as { url: string }).url;
        clearTimeout(timer);
        buffered = '';
        // Keep draining its log lines (one per request) so the pipe never blocks it.
        child.stdout!.off('data', onData);
        child.stdout!.resume();
        resolve({ child, url, pid: child.pid! });
        return;
      }
      buffered = buffered.slice(buffered.lastIndexOf('\n') + 1);
    };
    child.stdout!.on('data', onData);
  });
}

/**
 * A load client in its own process (so neither side's HTTP work shares the other's thread, nor this
 * test's): `concurrency` loops sending the `attacks` in turn for `durationMs` (a 429 waits its
 * Retry-After, or `pauseMs` between requests), printing outcomes, bytes received and latencies.
 */
const CLIENT = `
const c = JSON.parse(process.env.CLIENT_CONFIG);
const until = performance.now() + c.durationMs;
const outcomes = {};
const latencies = [];
let received = 0;
async function one(attack) {
  const started = performance.now();
  const res = await fetch(c.url + '/graphql', {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: 'Bearer ' + c.token },
    body: JSON.stringify({ query: attack.query, variables: attack.variables }),
  });
  const body = Buffer.from(await res.arrayBuffer());
  latencies.push(performance.now() - started);
  received += body.length;
  const text = body.length < 10000 ? body.toString('utf8') : '';
  const code = (text && /"code":"([A-Z_]+)"/.exec(text)?.[1]) || (c.expect && !text.includes(c.expect) ? 'UNEXPECTED ' + text.slice(0, 200) : 'data');
  const key = attack.name + ' -> ' + res.status + ' ' + code;
  outcomes[key] = (outcomes[key] ?? 0) + 1;
  return res.status === 429 ? Number(res.headers.get('retry-after') ?? 1) * 1000 : c.pauseMs;
}
await Promise.all(Array.from({ length: c.concurrency }, async (_, i) => {
  for (let n = i; performance.now() < until; n++) {
    const wait = await one(c.attacks[n % c.attacks.length]);
    if (wait > 0) await new Promise((r) => setTimeout(r, Math.max(0, Math.min(wait, until - performance.now()))));
  }
}));
process.stdout.write(JSON.stringify({ outcomes, received, latencies }));
`;

interface ClientResult {
  outcomes: Record<string, number>;
  received: number;
  latencies: number[];
}

function runClient(config: { url: string; token: string; concurrency: number; durationMs: number; pauseMs: number; attacks: Attack[]; expect?: string }): Promise<ClientResult> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', CLIENT], {
    env: { PATH: process.env.PATH ?? '', CLIENT_CONFIG: JSON.stringify(config) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => (code === 0 ? resolve(JSON.parse(out) as ClientResult) : reject(new Error(`load client failed (${code}): ${err.slice(-2000)}`))));
  });
}

const LOCK = join(tmpdir(), 'ext-storage-availability.lock');

/**
 * One availability run at a time on this machine (the PGlite and PostgreSQL projects run in
 * parallel): two of them at once would measure each other. A lock left by a dead process is taken over.
 */
async function lockMachine(): Promise<() => void> {
  const deadline = performance.now() + 600_000;
  for (;;) {
    try {
      mkdirSync(LOCK);
      writeFileSync(join(LOCK, 'pid'), String(process.pid));
      return () => rmSync(LOCK, { recursive: true, force: true });
    } catch {
      let owner = 0;
      try {
        owner = Number(readFileSync(join(LOCK, 'pid'), 'utf8'));
        process.kill(owner, 0);
      } catch {
        // No owner (or a dead one, or not written yet): take it over once it is clearly stale.
        if (owner) rmSync(LOCK, { recursive: true, force: true });
      }
      if (performance.now() > deadline) throw new Error(`${LOCK} stayed locked for 10 minutes`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

/** Resident set size of a process, in bytes. */
function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

/** Set-up requests from this process (small answers only). */
async function post(url: string, token: string, query: string, variables: Record<string, unknown> = {}): Promise<{ status: number; text: string }> {
  const res = await fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  });
  return { status: res.status, text: await res.text() };
}

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
const mb = (bytes: number) => `${(bytes / MiB).toFixed(0)} MiB`;

function availability(label: string, extraEnv: Record<string, string>, assertLatency: boolean): void {
  describe(`availability under 24 concurrent worst-case requests, ${label} (${backend})`, () => {
    let db: TestDatabase;
    let gw: Gateway;
    let attacker: string;
    let victim: string;
    const secret = randomBytes(32).toString('hex');

    let unlock: (() => void) | undefined;

    beforeAll(async () => {
      unlock = await lockMachine();
      db = await openTestDatabase();
      gw = await startGateway({
        NODE_ENV: 'production',
        STORAGE_JWT_SECRET: secret,
        PORT: '0',
        HOST: '127.0.0.1',
        LOG_LEVEL: 'info',
        ...extraEnv,
        ...(db.url ? { DATABASE_URL: db.url } : { PGLITE_DIR: 'memory://' }),
      });
      const tenantA = randomUUID();
      const tenantB = randomUUID();
      const installA = randomUUID();
      const installB = randomUUID();
      for (const [tid, iid] of [
        [tenantA, installA],
        [tenantB, installB],
      ] as const) {
        const admin = await mintToken(secret, { sub: 'admin', tid, role: 'admin' });
        const res = await post(
          gw.url,
          admin,
          'mutation($input: UpsertInstallInput!) { upsertInstall(input: $input) { id } }',
          { input: { id: iid, extensionId: 'availability', enabled: true, canRead: true, canWrite: true } },
        );
        expect(res.status).toBe(200);
      }
      attacker = await mintToken(secret, { sub: 'attacker', tid: tenantA, role: 'extension', iid: installA, scope: 'storage:read storage:write' });
      victim = await mintToken(secret, { sub: 'victim', tid: tenantB, role: 'extension', iid: installB, scope: 'storage:read storage:write' });
      const bulk = 'mutation($input: BulkPutRecordsInput!) { bulkPutRecords(input: $input) { __typename } }';
      for (const namespace of NAMESPACES) {
        const keys = keysOf(namespace);
        // 15 values of 64 KB fit in one 1 MiB bulk put.
        for (let i = 0; i < keys.length; i += 15) {
          const items = keys.slice(i, i + 15).map((key) => ({ key, value: BIG }));
          for (;;) {
            const res = await post(gw.url, attacker, bulk, { input: { namespace, items } });
            if (res.status === 429) {
              await new Promise((r) => setTimeout(r, 1000));
              continue;
            }
            expect(res.text).toContain('BulkPutRecordsSuccess');
            break;
          }
        }
      }
      const put = await post(gw.url, victim, 'mutation { putRecord(input: { namespace: "v", key: "k", value: { ok: true } }) { __typename } }');
      expect(put.text).toContain('PutRecordSuccess');
    }, 300_000);

    afterAll(async () => {
      if (gw?.child.exitCode === null) {
        gw.child.kill('SIGTERM');
        await new Promise((r) => gw.child.once('exit', r));
      }
      try {
        if (db) {
          await db.assertCountersConsistent();
          await db.dispose();
        }
      } finally {
        unlock?.();
      }
    });

    it(`stays up, within 512 MiB of RSS above idle${assertLatency ? ', and the other tenant keeps its p95 under 250 ms' : ''}`, async () => {
      // Idle: after seeding and a moment of quiet, with the victim's read warmed up.
      for (let i = 0; i < 20; i++) await post(gw.url, victim, '{ record(namespace: "v", key: "k") { value } }');
      await new Promise((r) => setTimeout(r, 1000));
      const idle = rssOf(gw.pid);
      let peak = idle;
      const sampler = setInterval(() => {
        if (gw.child.exitCode === null) peak = Math.max(peak, rssOf(gw.pid));
      }, 50);

      const report: string[] = [];
      const phases: Array<[string, Attack[]]> = [
        ['the findings as found', FINDINGS],
        ['the worst shapes the limits let through', WORST_ALLOWED],
      ];
      const victimAll: number[] = [];
      const read: Attack = { name: 'one-key read', query: '{ record(namespace: "v", key: "k") { value } }', variables: {} };
      try {
        for (const [phase, attacks] of phases) {
          // Each phase starts with the attacker's bucket full again (400 units at 200 per second): the first 24 come at once.
          await new Promise((r) => setTimeout(r, 2500));
          const [attack, other] = await Promise.all([
            runClient({ url: gw.url, token: attacker, concurrency: CONCURRENT, durationMs: PHASE_MS, pauseMs: 0, attacks }),
            // About 100 reads a second: well inside its own rate limit (200 units a second). The value is
            // jsonb's text, as stored (src/storage/json-text.ts).
            runClient({ url: gw.url, token: victim, concurrency: 1, durationMs: PHASE_MS, pauseMs: 10, attacks: [read], expect: '"value":{"ok": true}' }),
          ]);
          expect(Object.keys(other.outcomes)).toEqual(['one-key read -> 200 data']);
          victimAll.push(...other.latencies);
          const sorted = [...other.latencies].sort((a, b) => a - b);
          report.push(
            `  ${phase}: other tenant ${sorted.length} reads, p50 ${percentile(sorted, 50).toFixed(1)} ms, p95 ${percentile(sorted, 95).toFixed(1)} ms, ` +
              `p99 ${percentile(sorted, 99).toFixed(1)} ms, max ${sorted[sorted.length - 1]!.toFixed(1)} ms; attacker received ${mb(attack.received)}`,
            ...Object.entries(attack.outcomes).map(([k, v]) => `      ${v} x ${k}`),
          );
          // Every attack was answered as the contract says: refused before execution, stopped, served, or told to wait.
          for (const key of Object.keys(attack.outcomes)) expect(key).toMatch(/-> (400 QUERY_TOO_COSTLY|200 RESPONSE_TOO_LARGE|200 data|429 RATE_LIMITED)$/);
          if (attacks === FINDINGS) for (const key of Object.keys(attack.outcomes)) expect(key).toMatch(/-> (400 QUERY_TOO_COSTLY|429 RATE_LIMITED)$/);
        }
      } finally {
        clearInterval(sampler);
      }

      const health = await fetch(`${gw.url}/healthz`);
      // PGlite runs every tenant's statements on the gateway's own thread: its latency is printed only.
      const latencyAsserted = assertLatency && backend === 'postgres';
      const sorted = victimAll.sort((a, b) => a - b);
      const p95 = percentile(sorted, 95);
      console.log(
        [
          `availability (${backend}, ${label}, ${CONCURRENT} concurrent attacker requests, ${PHASE_MS / 1000} s per phase):`,
          ...report,
          `  RSS: idle ${mb(idle)}, peak ${mb(peak)}, peak above idle ${mb(peak - idle)} (limit ${mb(RSS_HEADROOM)})`,
          `  other tenant overall: ${sorted.length} reads, p95 ${p95.toFixed(1)} ms (limit ${P95_LIMIT_MS} ms${latencyAsserted ? '' : ', not asserted here'})`,
        ].join('\n'),
      );
      expect(gw.child.exitCode).toBeNull();
      expect(health.status).toBe(200);
      expect(peak - idle).toBeLessThan(RSS_HEADROOM);
      expect(sorted.length).toBeGreaterThan(100);
      if (latencyAsserted) expect(p95).toBeLessThan(P95_LIMIT_MS);
    }, 120_000);
  });
}

availability('default limits', {}, true);
// On PGlite the attacker's statements run on the gateway's own thread: without the bucket that run
// only says the embedded database is slow, so it is PostgreSQL only.
if (backend === 'postgres') availability('rate limiter off', { STORAGE_RATE_LIMIT_PER_SECOND: '0' }, false);
