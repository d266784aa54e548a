/**
 * npm run loadtest: the seed workload against a gateway child process on a fresh PostgreSQL database.
 *
 * Many tenants × installs × namespaces plus one hot install (its own tenant) that takes a share of
 * all operations (20 %); 70 % reads (record 85 %, recordList 15 %), 25 % writes (putRecord; 10 % of
 * them create-only, 10 % with a short TTL), 5 % deletes, issued open-loop at a target rate (2,000
 * ops/s; requests leave on schedule whether or not earlier ones have answered; in flight is capped,
 * and an operation due while the cap is reached is counted as skipped, never queued). Latency is
 * measured from the scheduled time, so a stalled server shows up in it; p95 of reads and of writes
 * (put + delete) is reported against the goals (< 5 ms, < 10 ms). Two installs of every tenant have
 * small quotas (namespaces + keys per namespace; bytes) so quotas are hit. Afterwards, per install:
 * usage ≤ quota and usage = a recount of the live records. Exit status 1 if a quota check fails or
 * any answer is neither a success nor an expected contract outcome (QuotaExceeded, RevisionMismatch).
 *
 * The load generator is this process (Node), the gateway a child process; with 2+ CPUs the gateway
 * is pinned to the last one and this process to the others (taskset; BENCH_PIN=0: no pinning), and
 * the report gives both processes' CPU.
 *
 *   npm run loadtest -- --rate 2000 --duration 60 [--mix 70,25,5 --hot-share 0.2 --warmup 5 --tenants 20
 *                       --installs 5 --namespaces 4 --keys 100 --concurrency 256 --seed-keys 20 --request-timeout 10]
 *                       [--instances 3 | --urls http://a:4000,http://b:4000]
 *
 * Several instances: `--instances N` starts N gateway children on the one database (REDIS_URL and
 * STORAGE_RATE_LIMIT_REDIS_* are passed on when set, so they share the rate limit); `--urls a,b,c`
 * targets gateways already running instead, and then needs their DATABASE_URL and STORAGE_JWT_SECRET
 * (to seed installs and mint tokens). Operations go round robin over the instances; the report gives
 * each instance's figures (p50/p95/p99, errors) and the total.
 *
 * A warm-up at the target rate (not recorded) runs first, so the measured window does not include
 * the gateway's JIT warm-up.
 *
 * DATABASE_URL: use that database (kept) instead of a fresh one. Report: bench/results/loadtest.json.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { Agent, request as httpRequest } from 'node:http';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { sql } from 'kysely';
import { mintToken } from '../src/auth/credentials.js';
import { openMigratedDatabase } from '../src/bootstrap.js';
import { loadConfig, type QuotaSettings } from '../src/config.js';
import type { DatabaseHandle } from '../src/db/database.js';
import { effectiveQuota } from '../src/storage/installs.js';
import type { Caller } from '../src/storage/principal.js';
import { Storage } from '../src/storage/storage.js';
import { namespaceUsage } from '../src/storage/usage.js';
import { execFileSync } from 'node:child_process';
import {
  benchDatabase,
  cpuSeconds,
  freePort,
  gatewayEnv,
  gatewayNodeArgs,
  generatorCpus,
  log,
  machineInfo,
  onInterrupt,
  resultsDir,
  round,
  Samples,
  serverCpu,
  startChild,
  table,
  type ChildServer,
} from './support.js';

const { values: flags } = parseArgs({
  options: {
    rate: { type: 'string', default: '2000' },
    mix: { type: 'string', default: '70,25,5' },
    'hot-share': { type: 'string', default: '0.2' },
    duration: { type: 'string', default: '60' },
    tenants: { type: 'string', default: '20' },
    installs: { type: 'string', default: '5' },
    namespaces: { type: 'string', default: '4' },
    keys: { type: 'string', default: '100' },
    concurrency: { type: 'string', default: '256' },
    'seed-keys': { type: 'string', default: '20' },
    'request-timeout': { type: 'string', default: '10' },
    warmup: { type: 'string', default: '5' },
    instances: { type: 'string', default: '1' },
    urls: { type: 'string' },
  },
});

function numberFlag(name: keyof typeof flags, min: number, max: number): number {
  const v = Number(flags[name]);
  if (!Number.isFinite(v) || v < min || v > max) throw new Error(`--${name} must be between ${min} and ${max}, got ${String(flags[name])}`);
  return v;
}

/** --mix reads,writes,deletes: percentages of all operations, summing to 100. */
function mixFlag(): { reads: number; writes: number; deletes: number } {
  const parts = String(flags.mix).split(',').map(Number);
  if (parts.length !== 3 || parts.some((p) => !Number.isFinite(p) || p < 0) || Math.abs(parts[0]! + parts[1]! + parts[2]! - 100) > 1e-9) {
    throw new Error(`--mix must be three percentages reads,writes,deletes summing to 100, got ${String(flags.mix)}`);
  }
  return { reads: parts[0]! / 100, writes: parts[1]! / 100, deletes: parts[2]! / 100 };
}

const settings = {
  rate: numberFlag('rate', 1, 50_000),
  mix: mixFlag(),
  /** Share of all operations sent to the one hot install (0: no hot install). */
  hotShare: numberFlag('hot-share', 0, 0.9),
  durationSeconds: numberFlag('duration', 1, 3600),
  tenants: numberFlag('tenants', 1, 1000),
  installsPerTenant: numberFlag('installs', 1, 100),
  namespacesPerInstall: numberFlag('namespaces', 1, 32),
  keysPerNamespace: numberFlag('keys', 1, 100_000),
  concurrency: numberFlag('concurrency', 1, 10_000),
  seedKeys: numberFlag('seed-keys', 0, 1000),
  requestTimeoutSeconds: numberFlag('request-timeout', 1, 120),
  warmupSeconds: numberFlag('warmup', 0, 600),
  /** Gateways already running (--urls), or null: start `instances` children. */
  urls: flags.urls ? flags.urls.split(',').map((u) => u.trim().replace(/\/+$/, '')).filter(Boolean) : null,
  instances: numberFlag('instances', 1, 16),
};

/** Quota profiles: install 0 of each tenant is tight on namespaces and keys, install 1 on bytes. */
const QUOTA_PROFILES: Array<Partial<QuotaSettings> | undefined> = [{ maxNamespaces: 2, maxKeysPerNamespace: 25 }, { maxBytes: 40_000 }];
const MIN_TTL_SECONDS = 5;
const SCHEMA = {
  type: 'object',
  required: ['n'],
  properties: { n: { type: 'integer' }, pad: { type: 'string' }, tags: { type: 'array', items: { type: 'string' } } },
  additionalProperties: false,
};

/** The goals of issue 12 for p95 latency from the scheduled time (ms). */
const P95_GOALS = { reads: 5, writes: 10 } as const;

const randomInt = (n: number) => Math.floor(Math.random() * n);
const nsName = (i: number) => `ns${i}`;
const keyName = (i: number) => `key-${i}`;
function randomValue(): { n: number; pad: string; tags: string[] } {
  const size = Math.random() < 0.75 ? 50 + randomInt(350) : 1000 + randomInt(2000);
  return { n: randomInt(1_000_000), pad: 'x'.repeat(size), tags: ['load'] };
}

interface LoadInstall {
  tenantId: string;
  id: string;
  token: string;
  /** Index into QUOTA_PROFILES, or null: default quotas. */
  profile: number | null;
  hot: boolean;
}

type OpName = 'get' | 'list' | 'put' | 'delete';
const OPS: OpName[] = ['get', 'list', 'put', 'delete'];
/** The latency goals' classes: reads (get, list) and writes (put, delete). */
type OpClass = keyof typeof P95_GOALS;
const classOf = (op: OpName): OpClass => (op === 'get' || op === 'list' ? 'reads' : 'writes');

/** A result kind that is part of the workload's design, not a failure of the gateway. */
const expectedKind = (kind: string) => kind.startsWith('QuotaExceeded') || kind === 'RevisionMismatch';

const QUERIES = {
  get: `query Get($ns: String!, $key: String!) { record(namespace: $ns, key: $key) { key revision value } }`,
  list: `query List($ns: String!) { recordList(namespace: $ns, first: 20) { edges { node { key revision } } pageInfo { hasNextPage endCursor } } }`,
  put: `mutation Put($input: PutRecordInput!) { putRecord(input: $input) { __typename
    ... on PutRecordSuccess { record { key revision } }
    ... on QuotaExceeded { quota allowed used }
    ... on RevisionMismatch { currentRevision }
    ... on LimitExceeded { limit }
    ... on ValidationFailed { message } } }`,
  delete: `mutation Delete($input: DeleteRecordInput!) { deleteRecord(input: $input) { __typename
    ... on DeleteRecordSuccess { deleted } ... on RevisionMismatch { currentRevision } ... on LimitExceeded { limit } } }`,
};

/** The installs operations go to: the hot one (if any) takes `hotShare` of them, the others share the rest evenly. */
interface Targets {
  hot: LoadInstall | undefined;
  others: LoadInstall[];
}

function nextOperation(targets: Targets): { op: OpName; install: LoadInstall; body: string } {
  const install = targets.hot && Math.random() < settings.hotShare ? targets.hot : targets.others[randomInt(targets.others.length)]!;
  const ns = nsName(randomInt(settings.namespacesPerInstall));
  const key = keyName(randomInt(settings.keysPerNamespace));
  const r = Math.random();
  if (r < settings.mix.reads) {
    const op: OpName = Math.random() < 0.85 ? 'get' : 'list';
    return { op, install, body: JSON.stringify({ query: QUERIES[op], variables: { ns, key } }) };
  }
  if (r < settings.mix.reads + settings.mix.writes) {
    const input: Record<string, unknown> = { namespace: ns, key, value: randomValue(), metadata: { by: 'loadtest' } };
    const w = Math.random();
    if (w < 0.1) input.ifRevision = 0;
    else if (w < 0.2) input.ttlSeconds = MIN_TTL_SECONDS + randomInt(16);
    return { op: 'put', install, body: JSON.stringify({ query: QUERIES.put, variables: { input } }) };
  }
  return { op: 'delete', install, body: JSON.stringify({ query: QUERIES.delete, variables: { input: { namespace: ns, key } } }) };
}

/** The result kind of one answer: 'ok' or an error kind. */
function classify(op: OpName, status: number, text: string): string {
  let body: any;
  try {
    body = JSON.parse(text);
  } catch {
    return `http:${status}:unparsable`;
  }
  const code = body?.errors?.[0]?.extensions?.code as string | undefined;
  if (status !== 200) return `http:${status}:${code ?? 'error'}`;
  if (code) return `graphql:${code}`;
  if (op === 'get' || op === 'list') return body?.data ? 'ok' : 'graphql:no-data';
  const result = op === 'put' ? body?.data?.putRecord : body?.data?.deleteRecord;
  switch (result?.__typename) {
    case 'PutRecordSuccess':
    case 'DeleteRecordSuccess':
      return 'ok';
    case 'QuotaExceeded':
      return `QuotaExceeded:${result.quota}`;
    case undefined:
      return 'graphql:no-data';
    default:
      return String(result.__typename);
  }
}

interface OpReport {
  issued: number;
  completed: number;
  ok: number;
  /** Latency from the scheduled send time (ms). */
  p50: number | null;
  p95: number | null;
  p99: number | null;
  /** Latency from the actual send (ms). */
  serviceP99: number | null;
  errors: Record<string, number>;
}

interface OpStats {
  issued: number;
  completed: number;
  ok: number;
  latency: Samples;
  service: Samples;
  kinds: Record<string, number>;
}

interface InstanceStats {
  url: string;
  issued: number;
  completed: number;
  ok: number;
  latency: Samples;
  kinds: Record<string, number>;
}

async function runLoad(gatewayUrls: string[], targets: Targets, durationSeconds: number, progress: boolean) {
  const urls = gatewayUrls.map((u) => new URL(u));
  const instances: InstanceStats[] = gatewayUrls.map((url) => ({ url, issued: 0, completed: 0, ok: 0, latency: new Samples(), kinds: {} }));
  let next = 0;
  /** Every answer's latency from the scheduled time, all instances together. */
  const all = new Samples();
  const agent = new Agent({ keepAlive: true, maxSockets: settings.concurrency, maxFreeSockets: settings.concurrency });
  const stats = Object.fromEntries(OPS.map((op) => [op, { issued: 0, completed: 0, ok: 0, latency: new Samples(), service: new Samples(), kinds: {} }])) as Record<OpName, OpStats>;
  // Latency from the scheduled time by class, over all installs and on the hot one.
  const classes = {
    reads: { all: new Samples(), hot: new Samples() },
    writes: { all: new Samples(), hot: new Samples() },
  } satisfies Record<OpClass, { all: Samples; hot: Samples }>;
  const total = Math.round(settings.rate * durationSeconds);
  const interval = 1000 / settings.rate;
  let issued = 0;
  let skipped = 0;
  let inFlight = 0;
  let completed = 0;
  let peakInFlight = 0;
  // Per second of schedule: answers and the slowest one (to see stalls in the JSON report).
  const timeline: Array<{ second: number; completed: number; maxMs: number }> = [];

  const started = performance.now();
  const send = (scheduledAt: number) => {
    const { op, install, body } = nextOperation(targets);
    const s = stats[op];
    s.issued++;
    // Round robin over the instances.
    const target = next++ % urls.length;
    const url = urls[target]!;
    const inst = instances[target]!;
    inst.issued++;
    inFlight++;
    peakInFlight = Math.max(peakInFlight, inFlight);
    const sentAt = performance.now();
    let done = false;
    const finish = (kind: string) => {
      if (done) return;
      done = true;
      inFlight--;
      completed++;
      s.completed++;
      const now = performance.now();
      s.latency.add(now - scheduledAt);
      s.service.add(now - sentAt);
      const c = classes[classOf(op)];
      c.all.add(now - scheduledAt);
      if (install.hot) c.hot.add(now - scheduledAt);
      const second = Math.floor((scheduledAt - started) / 1000);
      const slot = (timeline[second] ??= { second, completed: 0, maxMs: 0 });
      slot.completed++;
      slot.maxMs = Math.max(slot.maxMs, Math.round(now - scheduledAt));
      if (kind === 'ok') s.ok++;
      else s.kinds[kind] = (s.kinds[kind] ?? 0) + 1;
      inst.completed++;
      inst.latency.add(now - scheduledAt);
      all.add(now - scheduledAt);
      if (kind === 'ok') inst.ok++;
      else inst.kinds[kind] = (inst.kinds[kind] ?? 0) + 1;
    };
    const req = httpRequest(
      {
        agent,
        host: url.hostname,
        port: url.port,
        path: '/graphql',
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), authorization: `Bearer ${install.token}` },
        timeout: settings.requestTimeoutSeconds * 1000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => finish(classify(op, res.statusCode ?? 0, Buffer.concat(chunks).toString('utf8'))));
        res.on('error', (e: NodeJS.ErrnoException) => finish(`network:${e.code ?? 'error'}`));
      },
    );
    req.on('timeout', () => {
      req.destroy();
      finish('timeout');
    });
    req.on('error', (e: NodeJS.ErrnoException) => finish(`network:${e.code ?? 'error'}`));
    req.end(body);
  };

  let lastReport = started;
  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = performance.now();
      const due = Math.min(total, Math.floor((now - started) / interval) + 1);
      while (issued < due) {
        const scheduledAt = started + issued * interval;
        issued++;
        if (inFlight >= settings.concurrency) skipped++;
        else send(scheduledAt);
      }
      if (progress && now - lastReport >= 5000) {
        lastReport = now;
        const secs = (now - started) / 1000;
        log(`  ${secs.toFixed(0)} s: ${completed} done (${Math.round(completed / secs)}/s), ${inFlight} in flight, ${skipped} skipped`);
      }
      if (issued >= total) resolve();
      else setTimeout(tick, Math.max(0, Math.min(5, started + issued * interval - performance.now())));
    };
    tick();
  });
  const scheduleEnd = performance.now();
  // Drain: bounded; whatever has not answered by then is counted as a timeout.
  const drainDeadline = performance.now() + (settings.requestTimeoutSeconds + 5) * 1000;
  while (inFlight > 0 && performance.now() < drainDeadline) await new Promise((r) => setTimeout(r, 20));
  const ended = performance.now();
  const abandoned = inFlight;
  agent.destroy();
  return {
    stats,
    instances,
    all,
    classes,
    total,
    issued,
    skipped,
    completed,
    abandoned,
    peakInFlight,
    timeline: Array.from(timeline, (t, i) => t ?? { second: i, completed: 0, maxMs: 0 }),
    scheduleSeconds: (scheduleEnd - started) / 1000,
    seconds: (ended - started) / 1000,
  };
}

/** Prometheus text → sum of each series' values per metric name and label set we care about. */
function parseMetrics(text: string): Array<{ name: string; labels: Record<string, string>; value: number }> {
  const out: Array<{ name: string; labels: Record<string, string>; value: number }> = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

interface QuotaCheck {
  installId: string;
  profile: number | null;
  quota: QuotaSettings;
  usage: { namespaces: number; keys: number; bytes: number };
  recount: { namespaces: number; keys: number; bytes: number };
  problems: string[];
}

/** In one snapshot (now() fixed): per install, usage vs quota and usage vs a recount of live records. */
async function checkQuotas(database: DatabaseHandle, storage: Storage, installs: LoadInstall[]): Promise<QuotaCheck[]> {
  return database.db
    .transaction()
    .setIsolationLevel('repeatable read')
    .execute(async (trx) => {
      const checks: QuotaCheck[] = [];
      for (const install of installs) {
        const scope = { tenantId: install.tenantId, installId: install.id };
        const stored = await storage.loadInstall(null, install.id);
        const quota = effectiveQuota(stored!, storage.settings.quotaDefaults);
        const usage = await namespaceUsage(trx, scope);
        const { rows } = await sql<{ namespace: string; value: unknown; metadata: unknown; stored_bytes: number }>`
          SELECT namespace, value, metadata, (value_bytes + metadata_bytes)::bigint AS stored_bytes
            FROM ext_storage_records
           WHERE tenant_id = ${install.tenantId}::uuid AND install_id = ${install.id}::uuid
             AND (ttl_expires_at IS NULL OR ttl_expires_at > now())`.execute(trx);
        const recount = new Map<string, { keys: number; bytes: number }>();
        const problems: string[] = [];
        for (const r of rows) {
          const bytes = Buffer.byteLength(JSON.stringify(r.value)) + Buffer.byteLength(JSON.stringify(r.metadata ?? {}));
          if (bytes !== Number(r.stored_bytes)) problems.push(`stored size ${r.stored_bytes} ≠ JSON size ${bytes} in ${r.namespace}`);
          const c = recount.get(r.namespace) ?? { keys: 0, bytes: 0 };
          c.keys++;
          c.bytes += bytes;
          recount.set(r.namespace, c);
        }
        for (const u of usage) {
          const c = recount.get(u.namespace) ?? { keys: 0, bytes: 0 };
          if (u.keyCount !== c.keys || u.bytes !== c.bytes) problems.push(`${u.namespace}: usage ${u.keyCount} keys/${u.bytes} B, recount ${c.keys}/${c.bytes}`);
          if (u.keyCount > quota.maxKeysPerNamespace) problems.push(`${u.namespace}: ${u.keyCount} keys > quota ${quota.maxKeysPerNamespace}`);
        }
        for (const [ns] of recount) if (!usage.some((u) => u.namespace === ns)) problems.push(`${ns}: records but no usage row`);
        const total = {
          namespaces: usage.filter((u) => u.keyCount > 0).length,
          keys: usage.reduce((s, u) => s + u.keyCount, 0),
          bytes: usage.reduce((s, u) => s + u.bytes, 0),
        };
        const counted = {
          namespaces: recount.size,
          keys: [...recount.values()].reduce((s, c) => s + c.keys, 0),
          bytes: [...recount.values()].reduce((s, c) => s + c.bytes, 0),
        };
        if (total.namespaces > quota.maxNamespaces) problems.push(`${total.namespaces} namespaces > quota ${quota.maxNamespaces}`);
        if (total.bytes > quota.maxBytes) problems.push(`${total.bytes} bytes > quota ${quota.maxBytes}`);
        checks.push({ installId: install.id, profile: install.profile, quota, usage: total, recount: counted, problems });
      }
      return checks;
    });
}

async function main(): Promise<void> {
  const machine = machineInfo();
  const installCount = settings.tenants * settings.installsPerTenant;
  const hotLabel = settings.hotShare > 0 ? ` + 1 hot install (${round(settings.hotShare * 100, 1)} % of operations)` : '';
  const mixLabel = `${round(settings.mix.reads * 100, 1)} % reads, ${round(settings.mix.writes * 100, 1)} % writes, ${round(settings.mix.deletes * 100, 1)} % deletes`;
  log(
    `loadtest: ${settings.rate} ops/s for ${settings.durationSeconds} s (${mixLabel}) over ${settings.tenants} tenants × ${settings.installsPerTenant} installs × ` +
      `${settings.namespacesPerInstall} namespaces (${installCount} installs)${hotLabel}, ${machine.cpus} CPUs, load average ${machine.loadavg.join(' ')}`,
  );
  if (settings.urls && (!process.env.DATABASE_URL?.trim() || !process.env.STORAGE_JWT_SECRET)) {
    throw new Error('--urls needs the DATABASE_URL and STORAGE_JWT_SECRET of those gateways (to seed installs and mint tokens)');
  }
  const db = await benchDatabase('ext_storage_loadtest');
  let gateways: ChildServer[] = [];
  let database: DatabaseHandle | undefined;
  const cleanup = async () => {
    await Promise.all(gateways.map((g) => g.stop().catch(() => undefined)));
    await database?.close().catch(() => undefined);
    await db.drop().catch((e: unknown) => log(`could not drop the loadtest database: ${String(e)}`));
  };
  const unregister = onInterrupt(cleanup);
  let failed = false;
  try {
    const secret = settings.urls ? process.env.STORAGE_JWT_SECRET! : randomBytes(32).toString('hex');
    // The shared rate limit: the gateways started here use the Redis this process is given.
    const shared = Object.fromEntries(
      ['REDIS_URL', 'STORAGE_RATE_LIMIT_REDIS_FAILURE', 'STORAGE_RATE_LIMIT_REDIS_PREFIX'].flatMap((k) => (process.env[k] ? [[k, process.env[k]!]] : [])),
    );
    // The rate limiter stays on, far above the load: the hot install alone gets hundreds of operations a second.
    const env = gatewayEnv(db.url, secret, { STORAGE_MIN_TTL_SECONDS: String(MIN_TTL_SECONDS), STORAGE_RATE_LIMIT_PER_SECOND: '1000000', STORAGE_RATE_LIMIT_BURST: '1000000', ...shared });
    const config = loadConfig({ ...env, LOG_LEVEL: 'silent', STORAGE_INSTALL_CACHE_MS: '0' });
    database = await openMigratedDatabase(config);
    const storage = new Storage(database.db, config);

    log('seeding installs, schemas and records');
    const seedInstall = async (tenantId: string, i: number, profile: number | null, hot: boolean): Promise<LoadInstall> => {
      const admin: Caller = { principal: { kind: 'admin', tenantId, actor: 'loadtest' }, requestId: null };
      const id = randomUUID();
      await storage.upsertInstall(admin, {
        id,
        extensionId: hot ? 'load-ext-hot' : `load-ext-${i}`,
        enabled: true,
        canRead: true,
        canWrite: true,
        quota: profile === null ? undefined : QUOTA_PROFILES[profile],
      });
      await storage.setNamespaceSchema(admin, { installId: id, namespace: nsName(0), schema: SCHEMA });
      for (let n = 0; n < settings.namespacesPerInstall; n++) {
        const count = Math.min(settings.seedKeys, settings.keysPerNamespace);
        if (count === 0) continue;
        const items = Array.from({ length: count }, (_, k) => ({ key: keyName(k), value: { n: k, pad: 'x'.repeat(100 + randomInt(300)), tags: ['seed'] }, metadata: { by: 'seed' } }));
        await storage.bulkPutRecords(admin, { installId: id, namespace: nsName(n), items }).catch((e: unknown) => {
          if ((e as { code?: string }).code !== 'QUOTA_EXCEEDED') throw e;
        });
      }
      const token = await mintToken(secret, { sub: hot ? 'load-hot' : `load-${i}`, tid: tenantId, role: 'extension', iid: id, scope: 'storage:read storage:write', expiresIn: '6h' });
      return { tenantId, id, token, profile, hot };
    };
    const others: LoadInstall[] = [];
    for (let t = 0; t < settings.tenants; t++) {
      const tenantId = randomUUID();
      for (let i = 0; i < settings.installsPerTenant; i++) others.push(await seedInstall(tenantId, i, i < QUOTA_PROFILES.length ? i : null, false));
    }
    // The hot install: its own tenant, default quotas.
    const targets: Targets = { hot: settings.hotShare > 0 ? await seedInstall(randomUUID(), 0, null, true) : undefined, others };
    const installs = targets.hot ? [...others, targets.hot] : others;

    // The gateways on one CPU, this process (the load generator) on the others; or gateways already running (--urls).
    const cpu = settings.urls ? null : serverCpu();
    const ownCpus = settings.urls ? null : generatorCpus();
    for (let i = 0; !settings.urls && i < settings.instances; i++) {
      gateways.push(await startChild({ name: `gateway ${i + 1}`, script: 'src/main.ts', port: await freePort(), readyPath: '/readyz', env, cpu, nodeArgs: gatewayNodeArgs() }));
    }
    const urls = settings.urls ?? gateways.map((g) => g.url);
    if (ownCpus) execFileSync('taskset', ['-a', '-p', '-c', ownCpus.list, String(process.pid)], { stdio: 'ignore' });
    const pinning = settings.urls
      ? 'gateways not started here (--urls): not pinned'
      : cpu !== null
        ? `gateway${gateways.length > 1 ? 's' : ''} pinned to CPU ${cpu}, load generator (this process) to CPU ${ownCpus?.list}`
        : 'not pinned';
    const where = settings.urls ? urls.join(', ') : gateways.map((g) => `${g.url} (pid ${g.pid})`).join(', ');
    log(`${urls.length} gateway${urls.length > 1 ? 's' : ''} ${where}${shared.REDIS_URL ? ', shared rate limit (REDIS_URL)' : ''}, ${pinning}; running open-loop, round robin, concurrency cap ${settings.concurrency}`);
    if (settings.warmupSeconds > 0) {
      log(`warm-up: ${settings.warmupSeconds} s at the target rate (not recorded)`);
      await runLoad(urls, targets, settings.warmupSeconds, false);
    }
    // CPU of the gateways started here (summed); unknown for --urls.
    const gatewayCpu = () => {
      if (gateways.length === 0) return null;
      const each = gateways.map((g) => cpuSeconds(g.pid));
      return each.some((c) => c === null) ? null : each.reduce((a, b) => a! + b!, 0);
    };
    const cpuBefore = gatewayCpu();
    const ownBefore = process.cpuUsage();
    const run = await runLoad(urls, targets, settings.durationSeconds, true);
    const own = process.cpuUsage(ownBefore);
    const cpuAfter = gatewayCpu();
    const perOp = (seconds: number) => (run.completed > 0 ? round((seconds / run.completed) * 1e6, 0) : null);
    const gatewayCpuUsPerOp = cpuBefore !== null && cpuAfter !== null ? perOp(cpuAfter - cpuBefore) : null;
    const gatewayCpuShare = cpuBefore !== null && cpuAfter !== null ? round((cpuAfter - cpuBefore) / run.seconds, 2) : null;
    const generatorSeconds = (own.user + own.system) / 1e6;
    // Every instance's counters, summed below (each line is one series of one instance).
    const metricsText = (await Promise.all(urls.map(async (u) => (await fetch(`${u}/metrics`)).text()))).join('\n');
    await Promise.all(gateways.map((g) => g.stop()));
    gateways = [];

    log('checking quotas and usage against a recount');
    const checks = await checkQuotas(database, storage, installs);

    // ---------------------------------------------------------------- report
    const metrics = parseMetrics(metricsText);
    const sumBy = (name: string, label: string) => {
      const out: Record<string, number> = {};
      for (const m of metrics.filter((x) => x.name === name)) out[m.labels[label] ?? ''] = (out[m.labels[label] ?? ''] ?? 0) + m.value;
      return out;
    };
    const scalar = (name: string) => metrics.filter((m) => m.name === name).reduce((s, m) => s + m.value, 0);
    const errors: Record<string, number> = {};
    for (const op of OPS) for (const [k, v] of Object.entries(run.stats[op].kinds)) errors[k] = (errors[k] ?? 0) + v;
    if (run.abandoned > 0) errors.abandoned = run.abandoned;
    const unexpected = Object.entries(errors).filter(([k]) => !expectedKind(k)).reduce((s, [, v]) => s + v, 0);
    const violations = checks.filter((c) => c.problems.length > 0);
    const quotaInstalls = checks.filter((c) => c.profile !== null);
    const operations = {} as Record<OpName, OpReport>;
    for (const op of OPS) {
      const s = run.stats[op];
      const p = s.latency.percentiles([50, 95, 99]);
      operations[op] = { issued: s.issued, completed: s.completed, ok: s.ok, p50: p.p50 ?? null, p95: p.p95 ?? null, p99: p.p99 ?? null, serviceP99: s.service.percentiles([99]).p99 ?? null, errors: s.kinds };
    }
    const p95 = (samples: Samples) => samples.percentiles([95]).p95 ?? null;
    const goals = (Object.keys(P95_GOALS) as OpClass[]).map((cls) => {
      const c = run.classes[cls];
      const all = p95(c.all);
      return { class: cls, goalMs: P95_GOALS[cls], answers: c.all.count, p95: all, met: all !== null && all < P95_GOALS[cls], hotAnswers: c.hot.count, hotP95: p95(c.hot) };
    });
    const report = {
      at: new Date().toISOString(),
      machine,
      settings: {
        ...settings,
        quotaProfiles: QUOTA_PROFILES,
        minTtlSeconds: MIN_TTL_SECONDS,
        gateway: settings.urls ? `running gateways: ${urls.join(', ')}` : `${urls.length} child process(es) (node --import tsx src/main.ts), logs to /dev/null`,
        sharedRateLimit: Boolean(shared.REDIS_URL),
      },
      achieved: {
        targetRate: settings.rate,
        scheduled: run.total,
        issued: run.issued - run.skipped,
        skippedAtConcurrencyCap: run.skipped,
        completed: run.completed,
        abandonedAtDrain: run.abandoned,
        peakInFlight: run.peakInFlight,
        scheduleSeconds: round(run.scheduleSeconds, 2),
        seconds: round(run.seconds, 2),
        achievedRate: round(run.completed / run.seconds, 1),
        gatewayCpuUsPerOp,
        gatewayCpuCores: gatewayCpuShare,
        generatorCpuUsPerOp: perOp(generatorSeconds),
        generatorCpuCores: round(generatorSeconds / run.seconds, 2),
        pinning,
      },
      latencyGoals: goals,
      operations,
      instances: run.instances.map((inst) => {
        const p = inst.latency.percentiles([50, 95, 99]);
        return { url: inst.url, issued: inst.issued, completed: inst.completed, ok: inst.ok, p50: p.p50 ?? null, p95: p.p95 ?? null, p99: p.p99 ?? null, errors: inst.kinds };
      }),
      total: (() => {
        const p = run.all.percentiles([50, 95, 99]);
        return { completed: run.completed, ok: OPS.reduce((n, op) => n + operations[op].ok, 0), p50: p.p50 ?? null, p95: p.p95 ?? null, p99: p.p99 ?? null, errors };
      })(),
      errors,
      unexpectedErrors: unexpected,
      timeline: run.timeline,
      quotas: {
        held: violations.length === 0,
        installsChecked: checks.length,
        installsWithQuotas: quotaInstalls.length,
        installsAtOrNearQuota: quotaInstalls.filter((c) => c.usage.bytes >= 0.8 * c.quota.maxBytes || c.usage.namespaces >= c.quota.maxNamespaces).length,
        violations: violations.map((c) => ({ installId: c.installId, problems: c.problems.slice(0, 10) })),
        sample: quotaInstalls.slice(0, 4).map((c) => ({ installId: c.installId, quota: c.quota, usage: c.usage, recount: c.recount })),
      },
      serverMetrics: {
        operations: sumBy('ext_storage_operations_total', 'outcome'),
        quotaRejections: sumBy('ext_storage_quota_rejections_total', 'quota'),
        quotaPressure: Object.fromEntries(
          metrics.filter((m) => m.name === 'ext_storage_quota_pressure_total').map((m) => [`${m.labels.quota}@${m.labels.threshold}`, m.value]),
        ),
        ttlDeleted: scalar('ext_storage_ttl_deleted_total'),
        rateLimited: scalar('ext_storage_rate_limited_total'),
        validationFailures: scalar('ext_storage_validation_failures_total'),
      },
    };
    mkdirSync(resultsDir, { recursive: true });
    const out = join(resultsDir, 'loadtest.json');
    writeFileSync(out, JSON.stringify(report, null, 2) + '\n');

    const a = report.achieved;
    const lines = [
      '',
      `Load test: target ${a.targetRate} ops/s for ${settings.durationSeconds} s (${mixLabel}), ${installCount} installs (${quotaInstalls.length} with small quotas)${hotLabel}, ` +
        `${machine.cpus} CPUs, load average at start ${machine.loadavg.join(' ')}`,
      `achieved ${a.achievedRate} ops/s: ${a.completed} completed of ${a.scheduled} scheduled, ${a.skippedAtConcurrencyCap} skipped at the concurrency cap (${settings.concurrency}), peak in flight ${a.peakInFlight}, ${a.abandonedAtDrain} abandoned`,
      `gateway CPU: ${a.gatewayCpuUsPerOp ?? '?'} µs per operation, ${a.gatewayCpuCores ?? '?'} cores busy on average; ` +
        `load generator (Node, this process): ${a.generatorCpuUsPerOp ?? '?'} µs per operation, ${a.generatorCpuCores} cores; ${pinning}`,
      '',
      table(
        ['p95 goal', 'answers', 'p95 ms', 'goal', 'met', 'hot install answers', 'hot p95 ms'],
        goals.map((g) => [g.class === 'reads' ? 'reads (get, list)' : 'writes (put, delete)', g.answers, g.p95?.toFixed(2) ?? null, `< ${g.goalMs} ms`, g.met ? 'yes' : 'MISS', g.hotAnswers, g.hotP95?.toFixed(2) ?? null]),
      ),
      '',
      table(
        ['operation', 'completed', 'ok', 'p50 ms', 'p95 ms', 'p99 ms', 'errors'],
        OPS.map((op) => {
          const o = operations[op];
          return [op, o.completed, o.ok, o.p50?.toFixed(2) ?? null, o.p95?.toFixed(2) ?? null, o.p99?.toFixed(2) ?? null, Object.entries(o.errors).map(([k, v]) => `${k}=${v}`).join(' ') || '0'];
        }),
      ),
      '(latency from the scheduled send time: open loop, so client-side delay counts too)',
      '',
      table(
        ['instance', 'completed', 'ok', 'p50 ms', 'p95 ms', 'p99 ms', 'errors'],
        [
          ...report.instances.map((i) => [i.url, i.completed, i.ok, i.p50?.toFixed(2) ?? null, i.p95?.toFixed(2) ?? null, i.p99?.toFixed(2) ?? null, Object.entries(i.errors).map(([k, v]) => `${k}=${v}`).join(' ') || '0']),
          ['total', report.total.completed, report.total.ok, report.total.p50?.toFixed(2) ?? null, report.total.p95?.toFixed(2) ?? null, report.total.p99?.toFixed(2) ?? null, Object.entries(errors).map(([k, v]) => `${k}=${v}`).join(' ') || '0'],
        ],
      ),
      '',
      `errors by kind: ${Object.entries(errors).map(([k, v]) => `${k}=${v}`).join(', ') || 'none'}`,
      `unexpected errors (anything but QuotaExceeded / RevisionMismatch): ${unexpected}`,
      `server counters (warm-up included): quota rejections ${JSON.stringify(report.serverMetrics.quotaRejections)}, quota pressure ${JSON.stringify(report.serverMetrics.quotaPressure)}, ` +
        `TTL deletions ${report.serverMetrics.ttlDeleted}, rate limited ${report.serverMetrics.rateLimited}`,
      `quotas held: ${report.quotas.held ? 'yes' : 'NO'} — ${checks.length} installs checked, usage ≤ quota and usage = recount of live records` +
        (violations.length > 0 ? `; ${violations.length} installs with problems, e.g. ${violations[0]!.problems.slice(0, 3).join('; ')}` : ''),
    ];
    process.stdout.write(lines.join('\n') + '\n');
    log(`report written to ${out}`);
    failed = violations.length > 0 || unexpected > 0;
  } finally {
    unregister();
    await cleanup();
  }
  if (failed) process.exit(1);
}

main().catch((error: unknown) => {
  process.stderr.write(`loadtest failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
