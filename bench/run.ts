/**
 * npm run bench: the gateway against a bare node:http + pg server running the same SQL, on one
 * fresh PostgreSQL database, same load (autocannon, 16 connections by default).
 *
 * Both servers run as child processes (`node --import tsx`), pinned to the same CPU with taskset
 * when there are at least two (the load generator keeps the others); only one is loaded at a time.
 * The gateway runs with production settings: JWT auth, the rate limiter on (with a limit far above
 * the load), request logging on (to /dev/null), JSON Schema on the written namespaces.
 * Every server is primed with every scenario first (so no scenario runs on colder code), and each
 * measured run has its own short warm-up. CPU per request comes from /proc (user + system, all
 * threads of the server process): on a shared machine it is steadier than requests per second.
 *
 * The ttl-backlog scenario (bench/ttl-backlog.ts) runs after them, on its own database and gateway:
 * put and usage on an install with 100,000 expired, unswept records against one without.
 *
 * Flags (or env): --duration/BENCH_DURATION seconds per run (6), --warmup/BENCH_WARMUP (1),
 * --connections/BENCH_CONNECTIONS (16), --only/BENCH_SCENARIOS (comma list), --profile/BENCH_CPU_PROF=1
 * (writes a .cpuprofile of the gateway and prints where its CPU went), --backlog-records/
 * BENCH_TTL_BACKLOG_RECORDS (100000), --backlog-put-seconds/BENCH_TTL_PUT_SECONDS (3). DATABASE_URL: use
 * that database (kept) instead of creating and dropping one. BENCH_PIN=0: no CPU pinning.
 *
 * Results: a table on stdout, progress on stderr, JSON in bench/results/latest.json.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import autocannon, { type AutocannonRequest } from 'autocannon';
import pino from 'pino';
import { mintToken } from '../src/auth/credentials.js';
import { openMigratedDatabase } from '../src/bootstrap.js';
import { loadConfig } from '../src/config.js';
import { openDatabase, type DatabaseHandle } from '../src/db/database.js';
import { createApp, type App } from '../src/http/server.js';
import type { Caller } from '../src/storage/principal.js';
import { Storage } from '../src/storage/storage.js';
import { formatProfile, summarizeProfile, type ProfileSummary } from './profile.js';
import {
  benchDatabase,
  classifyGraphQL,
  cpuSeconds,
  freePort,
  gatewayEnv,
  gqlHeaders,
  gqlRequest,
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
  type Driver,
  type RunResult,
} from './support.js';
import { formatTtlBacklog, runTtlBacklog, TTL_BACKLOG, type TtlBacklogResult } from './ttl-backlog.js';

// ---------------------------------------------------------------- settings

const { values: flags } = parseArgs({
  options: {
    duration: { type: 'string' },
    warmup: { type: 'string' },
    connections: { type: 'string' },
    only: { type: 'string' },
    profile: { type: 'boolean' },
    'backlog-records': { type: 'string' },
    'backlog-put-seconds': { type: 'string' },
  },
});
const settings = {
  durationSeconds: Number(flags.duration ?? process.env.BENCH_DURATION ?? 6),
  warmupSeconds: Number(flags.warmup ?? process.env.BENCH_WARMUP ?? 1),
  connections: Number(flags.connections ?? process.env.BENCH_CONNECTIONS ?? 16),
  only: (flags.only ?? process.env.BENCH_SCENARIOS ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean),
  profile: flags.profile === true || process.env.BENCH_CPU_PROF === '1',
  /** ttl-backlog: expired, unswept records seeded on install A. */
  backlogRecords: Number(flags['backlog-records'] ?? process.env.BENCH_TTL_BACKLOG_RECORDS ?? 100_000),
  /** ttl-backlog: seconds of puts per install (each put on A sweeps part of the backlog, so short). */
  backlogPutSeconds: Number(flags['backlog-put-seconds'] ?? process.env.BENCH_TTL_PUT_SECONDS ?? 3),
};
for (const [k, v] of Object.entries({
  duration: settings.durationSeconds,
  warmup: settings.warmupSeconds,
  connections: settings.connections,
  'backlog-put-seconds': settings.backlogPutSeconds,
})) {
  if (!Number.isFinite(v) || v < 0 || (k !== 'warmup' && v === 0) || v > 3600) throw new Error(`bench: --${k} must be a number of seconds/connections in range, got ${v}`);
}
if (!Number.isSafeInteger(settings.backlogRecords) || settings.backlogRecords < 100 || settings.backlogRecords > 10_000_000) {
  throw new Error(`bench: --backlog-records must be an integer from 100 to 10,000,000, got ${settings.backlogRecords}`);
}

const SEED_KEYS = 1000;
const READ_NS = 'bench';
const GUARDED_NS = 'guarded';
const OPEN_NS = 'open';
const BULK_NS = 'bulk';
const RECORD_FIELDS = 'namespace key value metadata revision schemaVersion ttlExpiresAt createdAt updatedAt';
const VALUE_SCHEMA = {
  type: 'object',
  required: ['title', 'n'],
  properties: {
    title: { type: 'string', maxLength: 200 },
    n: { type: 'integer', minimum: 0 },
    tags: { type: 'array', items: { type: 'string' }, maxItems: 10 },
    body: { type: 'string' },
  },
  additionalProperties: false,
};

const keyOf = (i: number) => `k${String(i).padStart(4, '0')}`;
const valueOf = (n: number) => ({ title: `item ${n}`, n, tags: ['bench', 'seed'], body: 'x'.repeat(150) });
const METADATA = { source: 'bench' };
const randomInt = (n: number) => Math.floor(Math.random() * n);

// ---------------------------------------------------------------- request drivers

interface Target {
  kind: 'gateway' | 'bare';
  url: string;
  token: string;
  /** Tokens of SPREAD_INSTALLS further installs (the put16 scenario spreads its writes over them). */
  spreadTokens?: string[];
}

/** Installs the put16 scenario spreads its writers over (one install's writes are serialised). */
const SPREAD_INSTALLS = 16;

const jsonHeaders = { 'content-type': 'application/json' };

function bareRequest(path: string, body: () => unknown, onResponse?: AutocannonRequest['onResponse']): AutocannonRequest {
  return {
    method: 'POST',
    path,
    headers: jsonHeaders,
    setupRequest(req) {
      req.body = JSON.stringify(body());
      return req;
    },
    onResponse,
  };
}

const classifyBare = (status: number) => (status === 200 ? null : `http_${status}`);

/**
 * Keys written with ifRevision: each in-flight request holds its own key, and its revision is known
 * from the previous answer, so every conditional write should succeed. The request id header
 * (echoed by both servers) tells which key an answer belongs to.
 */
class RevisionTracker {
  private readonly free: number[];
  private readonly revision: Int32Array;
  mismatches = 0;
  constructor(
    readonly prefix: string,
    size: number,
  ) {
    this.free = Array.from({ length: size }, (_, i) => size - 1 - i);
    this.revision = new Int32Array(size);
  }
  take(): number {
    return this.free.pop() ?? randomInt(this.revision.length);
  }
  settle(headers: Record<string, string | string[]>, revision: number | null): void {
    const id = headers['x-request-id'];
    const i = typeof id === 'string' && id.startsWith('slot') ? Number(id.slice(4)) : NaN;
    if (!Number.isInteger(i) || i < 0 || i >= this.revision.length) return;
    if (revision !== null) this.revision[i] = revision;
    this.free.push(i);
  }
  revisionOf(i: number): number {
    return this.revision[i]!;
  }
}

/** A conditional put (ifRevision always given: 0 first, then the last revision). */
function putDriver(t: Target, namespace: string, spread = false): Driver {
  const tracker = new RevisionTracker(`put-${randomBytes(3).toString('hex')}-`, settings.connections * 4);
  let n = 0;
  const build = (req: AutocannonRequest) => {
    const slot = tracker.take();
    const tokens = spread ? t.spreadTokens : undefined;
    const token = tokens && tokens.length > 0 ? tokens[slot % tokens.length]! : t.token;
    req.headers = { ...req.headers, ...(t.kind === 'gateway' ? gqlHeaders(token) : {}), 'x-request-id': `slot${slot}` };
    const input = { namespace, key: `${tracker.prefix}${slot}`, value: valueOf(n++ % 100_000), metadata: METADATA, ifRevision: tracker.revisionOf(slot) };
    req.body = JSON.stringify(
      t.kind === 'gateway'
        ? {
            query: `mutation Put($input: PutRecordInput!) { putRecord(input: $input) { __typename
              ... on PutRecordSuccess { record { key revision updatedAt } }
              ... on RevisionMismatch { key currentRevision } } }`,
            variables: { input },
          }
        : input,
    );
    return req;
  };
  const onResponse: AutocannonRequest['onResponse'] = (status, body, _ctx, headers) => {
    let revision: number | null = null;
    try {
      const parsed = JSON.parse(body) as any;
      const r = t.kind === 'gateway' ? parsed?.data?.putRecord : parsed;
      if (r?.record?.revision) revision = r.record.revision;
      else if (r?.__typename === 'RevisionMismatch') {
        tracker.mismatches++;
        revision = r.currentRevision ?? 0;
      }
    } catch {
      // counted by classify
    }
    tracker.settle(headers, revision);
  };
  const path = t.kind === 'gateway' ? '/graphql' : '/put';
  return {
    requests: [{ method: 'POST', path, headers: t.kind === 'gateway' ? gqlHeaders(t.token) : jsonHeaders, setupRequest: build, onResponse }],
    classify: (status, body) => (t.kind === 'gateway' ? classifyGraphQL(status, body) : classifyBare(status)),
  };
}

function scenarioDriver(name: string, t: Target, listPages: ListPages): Driver {
  const gw = t.kind === 'gateway';
  const classify = (status: number, body: string) => (gw ? classifyGraphQL(status, body) : classifyBare(status));
  switch (name) {
    case 'noop': {
      // The floor: credential, rate limit, GraphQL parse/validate/execute of `{ __typename }`, log line; no SQL.
      const body = () => (gw ? { query: 'query Noop { __typename }' } : {});
      return { requests: [gw ? gqlRequest(t.token, body) : bareRequest('/noop', body)], classify };
    }
    case 'get': {
      const query = `query Get($key: String!) { record(namespace: "${READ_NS}", key: $key) { ${RECORD_FIELDS} } }`;
      const body = () => (gw ? { query, variables: { key: keyOf(randomInt(SEED_KEYS)) } } : { namespace: READ_NS, key: keyOf(randomInt(SEED_KEYS)) });
      return { requests: [gw ? gqlRequest(t.token, body) : bareRequest('/get', body)], classify };
    }
    case 'records100': {
      const query = `query GetMany($keys: [String!]!) { records(namespace: "${READ_NS}", keys: $keys) { ${RECORD_FIELDS} } }`;
      const keys = () => {
        const start = randomInt(SEED_KEYS - 100);
        return Array.from({ length: 100 }, (_, i) => keyOf(start + i));
      };
      const body = () => (gw ? { query, variables: { keys: keys() } } : { namespace: READ_NS, keys: keys() });
      return { requests: [gw ? gqlRequest(t.token, body) : bareRequest('/records', body)], classify };
    }
    case 'list100': {
      const query = `query List($after: String) { recordList(namespace: "${READ_NS}", first: 100, after: $after) {
        edges { cursor node { ${RECORD_FIELDS} } } pageInfo { hasNextPage endCursor } } }`;
      const body = () => {
        const page = randomInt(listPages.cursors.length);
        return gw ? { query, variables: { after: listPages.cursors[page] } } : { namespace: READ_NS, first: 100, afterKey: listPages.afterKeys[page] };
      };
      return { requests: [gw ? gqlRequest(t.token, body) : bareRequest('/list', body)], classify };
    }
    case 'put':
      return putDriver(t, GUARDED_NS);
    case 'put16':
      return putDriver(t, GUARDED_NS, true);
    case 'put-guards-off':
      return putDriver(t, OPEN_NS);
    case 'bulk100': {
      // Each in-flight batch owns a window of 100 keys (unconditional upserts, no overlap between batches).
      const tracker = new RevisionTracker('bulk', settings.connections * 2);
      let n = 0;
      const query = `mutation Bulk($input: BulkPutRecordsInput!) { bulkPutRecords(input: $input) { __typename
        ... on BulkPutRecordsSuccess { records { key revision } } } }`;
      const build = (req: AutocannonRequest) => {
        const slot = tracker.take();
        req.headers = { ...req.headers, 'x-request-id': `slot${slot}` };
        const items = Array.from({ length: 100 }, (_, i) => ({ key: `w${slot}/${i}`, value: valueOf(n++ % 100_000), metadata: METADATA }));
        req.body = JSON.stringify(gw ? { query, variables: { input: { namespace: BULK_NS, items } } } : { namespace: BULK_NS, items });
        return req;
      };
      return {
        requests: [
          {
            method: 'POST',
            path: gw ? '/graphql' : '/bulk',
            headers: gw ? gqlHeaders(t.token) : jsonHeaders,
            setupRequest: build,
            onResponse: (_s, _b, _c, headers) => tracker.settle(headers, null),
          },
        ],
        classify,
      };
    }
    default:
      throw new Error(`unknown scenario ${name}`);
  }
}

// ---------------------------------------------------------------- running one load

/** Runs a driver for `seconds` (or until `maxRequests` answers, when given) and measures it. */
async function load(label: string, server: ChildServer, driver: Driver, seconds: number, progress: boolean, maxRequests = Infinity): Promise<RunResult> {
  const samples = new Samples();
  const errors: Record<string, number> = {};
  const requests = driver.requests.map((r) => {
    const user = r.onResponse;
    return {
      ...r,
      onResponse: (status: number, body: string, ctx: Record<string, unknown>, headers: Record<string, string | string[]>) => {
        const kind = driver.classify(status, body, headers);
        if (kind) errors[kind] = (errors[kind] ?? 0) + 1;
        user?.(status, body, ctx, headers);
      },
    };
  });
  const cpuBefore = cpuSeconds(server.pid);
  const started = performance.now();
  const instance = autocannon({ url: server.url, connections: settings.connections, duration: seconds, timeout: 30, requests });
  instance.on('response', (_client: unknown, _status: number, _bytes: number, ms: number) => {
    samples.add(ms);
    if (samples.count === maxRequests) instance.stop();
  });
  let tick = 0;
  if (progress) {
    instance.on('tick', () => {
      tick++;
      if (process.stderr.isTTY) process.stderr.write(`\r  ${label}: ${tick}/${seconds} s, ${samples.count} responses   `);
    });
  }
  const result = await instance;
  const elapsed = (performance.now() - started) / 1000;
  const cpuAfter = cpuSeconds(server.pid);
  if (progress && process.stderr.isTTY) process.stderr.write('\r\x1b[K');
  if (result.errors > 0) errors.connection = (errors.connection ?? 0) + result.errors;
  if (result.timeouts > 0) errors.timeout = (errors.timeout ?? 0) + result.timeouts;
  const n = samples.count;
  const pcts = samples.percentiles([50, 95, 99]);
  return {
    requests: n,
    seconds: round(elapsed, 2),
    rps: round(n / elapsed, 0),
    p50: pcts.p50 ?? null,
    p95: pcts.p95 ?? null,
    p99: pcts.p99 ?? null,
    errors,
    cpuUsPerRequest: cpuBefore !== null && cpuAfter !== null && n > 0 ? round(((cpuAfter - cpuBefore) / n) * 1e6, 0) : null,
  };
}

/** Several runs of one configuration as one: total requests over total time, mean of the percentiles and CPU. */
function mergeRuns(runs: RunResult[]): RunResult {
  const mean = (pick: (r: RunResult) => number | null) => {
    const v = runs.map(pick).filter((x): x is number => x !== null);
    return v.length === 0 ? null : round(v.reduce((a, b) => a + b, 0) / v.length, 3);
  };
  const requests = runs.reduce((a, r) => a + r.requests, 0);
  const seconds = runs.reduce((a, r) => a + r.seconds, 0);
  const errors: Record<string, number> = {};
  for (const r of runs) for (const [k, v] of Object.entries(r.errors)) errors[k] = (errors[k] ?? 0) + v;
  const cpu = mean((r) => r.cpuUsPerRequest);
  return { requests, seconds: round(seconds, 2), rps: round(requests / seconds, 0), p50: mean((r) => r.p50), p95: mean((r) => r.p95), p99: mean((r) => r.p99), errors, cpuUsPerRequest: cpu === null ? null : round(cpu, 0) };
}

/** When each server's first measured (post warm-up) run started: the profile summary skips what came before. */
const firstMeasuredAt = new Map<ChildServer, number>();

async function measure(label: string, server: ChildServer, driver: () => Driver): Promise<RunResult> {
  if (settings.warmupSeconds > 0) await load(`${label} (warm-up)`, server, driver(), settings.warmupSeconds, false);
  if (!firstMeasuredAt.has(server)) firstMeasuredAt.set(server, performance.now());
  const r = await load(label, server, driver(), settings.durationSeconds, true);
  const errs = Object.entries(r.errors).map(([k, v]) => `${k}=${v}`).join(' ');
  log(`  ${label.padEnd(28)} ${String(r.rps).padStart(6)} req/s  p50 ${r.p50} ms  p95 ${r.p95} ms  p99 ${r.p99} ms  cpu ${r.cpuUsPerRequest ?? '?'} µs/req${errs ? `  errors: ${errs}` : ''}`);
  return r;
}

// ---------------------------------------------------------------- SQL statements per request (in process)

interface StatementCount {
  perRequest: number;
  statements: string[];
}

/** Sends each scenario's requests to an in-process gateway whose Kysely observer counts statements. */
async function countStatements(app: App, counter: { n: number; sql: string[] }, drivers: Array<[string, Driver]>): Promise<Record<string, StatementCount>> {
  const out: Record<string, StatementCount> = {};
  const url = app.url();
  for (const [name, driver] of drivers) {
    const counts: number[] = [];
    let last: string[] = [];
    const request = driver.requests[0]!;
    for (let i = 0; i < 6; i++) {
      const req = request.setupRequest!({ ...request, headers: { ...request.headers } }, {});
      counter.n = 0;
      counter.sql = [];
      const res = await fetch(url + req.path, { method: 'POST', headers: req.headers, body: req.body as string });
      const body = await res.text();
      const headers: Record<string, string> = {};
      res.headers.forEach((v, k) => (headers[k] = v));
      const kind = driver.classify(res.status, body, headers);
      request.onResponse?.(res.status, body, {}, headers);
      if (kind) throw new Error(`statement count for ${name}: request failed (${kind}): ${body.slice(0, 300)}`);
      if (i > 0) counts.push(counter.n); // the first request warms the validator cache
      last = counter.sql;
    }
    out[name] = { perRequest: round(counts.reduce((s, c) => s + c, 0) / counts.length, 2), statements: last };
  }
  return out;
}

// ---------------------------------------------------------------- main

interface ListPages {
  cursors: Array<string | null>;
  afterKeys: Array<string | null>;
}

const SCENARIOS = [
  { name: 'noop', title: 'no-op query { __typename } (no SQL)' },
  { name: 'get', title: 'single get (record)' },
  { name: 'records100', title: 'records, 100 keys' },
  { name: 'list100', title: 'recordList first:100' },
  { name: 'put', title: 'conditional put, guards on, all writers on one install' },
  { name: 'put16', title: `conditional put, guards on, writers spread over ${SPREAD_INSTALLS} installs` },
  { name: 'bulk100', title: 'bulk put of 100' },
] as const;

type Scenario = (typeof SCENARIOS)[number];

/** The gateway-vs-bare scenarios: prints their table and returns what goes into latest.json. */
async function runGatewayVsBare(scenarios: readonly Scenario[], runGuardsOff: boolean, machine: ReturnType<typeof machineInfo>): Promise<Record<string, unknown>> {
  log(`bench: ${settings.durationSeconds} s per run (+${settings.warmupSeconds} s warm-up), ${settings.connections} connections, ${machine.cpus} CPUs, load average ${machine.loadavg.join(' ')}`);

  const children: ChildServer[] = [];
  const handles: DatabaseHandle[] = [];
  let inProcess: App | undefined;
  const db = await benchDatabase('ext_storage_bench');
  const cleanup = async () => {
    await inProcess?.close(1000).catch(() => undefined);
    await Promise.all(children.map((c) => c.stop().catch(() => undefined)));
    await Promise.all(handles.map((h) => h.close().catch(() => undefined)));
    await db.drop().catch((e: unknown) => log(`could not drop the bench database: ${String(e)}`));
  };
  const unregister = onInterrupt(cleanup);
  try {
    log(`database: ${db.created ? 'created' : 'given (DATABASE_URL)'} ${db.url.replace(/\/\/[^@]*@/, '//')}`);
    const secret = randomBytes(32).toString('hex');
    const baseEnv = gatewayEnv(db.url, secret, { STORAGE_DB_POOL_MAX: '20' });
    const config = loadConfig({ ...baseEnv, LOG_LEVEL: 'silent', STORAGE_RATE_LIMIT_PER_SECOND: '1000000', STORAGE_RATE_LIMIT_BURST: '1000000' });
    const database = await openMigratedDatabase(config);
    handles.push(database);

    // Seed: one tenant, one install with room to grow, 1,000 records to read, schemas on the written namespaces.
    const tenantId = randomUUID();
    const installId = randomUUID();
    const admin: Caller = { principal: { kind: 'admin', tenantId, actor: 'bench' }, requestId: null };
    const storage = new Storage(database.db, config);
    await storage.upsertInstall(admin, {
      id: installId,
      extensionId: 'bench',
      enabled: true,
      canRead: true,
      canWrite: true,
      quota: { maxKeysPerNamespace: 1_000_000, maxBytes: 64 * 1024 ** 3, maxNamespaces: 100 },
    });
    for (let start = 0; start < SEED_KEYS; start += 100) {
      const items = Array.from({ length: Math.min(100, SEED_KEYS - start) }, (_, i) => ({ key: keyOf(start + i), value: valueOf(start + i), metadata: METADATA }));
      await storage.bulkPutRecords(admin, { installId, namespace: READ_NS, items });
    }
    for (const namespace of [GUARDED_NS, BULK_NS]) await storage.setNamespaceSchema(admin, { installId, namespace, schema: VALUE_SCHEMA });
    const token = await mintToken(secret, { sub: 'bench-extension', tid: tenantId, role: 'extension', iid: installId, scope: 'storage:read storage:write', expiresIn: '6h' });
    const spreadTokens: string[] = [];
    for (let i = 0; i < SPREAD_INSTALLS; i++) {
      const id = randomUUID();
      await storage.upsertInstall(admin, { id, extensionId: 'bench', enabled: true, canRead: true, canWrite: true, quota: { maxKeysPerNamespace: 1_000_000, maxBytes: 64 * 1024 ** 3 } });
      await storage.setNamespaceSchema(admin, { installId: id, namespace: GUARDED_NS, schema: VALUE_SCHEMA });
      spreadTokens.push(await mintToken(secret, { sub: 'bench-extension', tid: tenantId, role: 'extension', iid: id, scope: 'storage:read storage:write', expiresIn: '6h' }));
    }
    log(`seeded: install ${installId}, ${SEED_KEYS} records in "${READ_NS}", schema on "${GUARDED_NS}" and "${BULK_NS}"`);

    // In-process gateway with a statement counter (same code, same database; used only for counting).
    const counter = { n: 0, sql: [] as string[] };
    const observed = await openDatabase(config, [
      (event) => {
        counter.n++;
        counter.sql.push(event.query.sql.replace(/\s+/g, ' ').trim().slice(0, 90));
      },
    ]);
    inProcess = createApp({ config, database: observed, logger: pino({ level: 'silent' }), jwtSecret: secret });
    await inProcess.listen(0, '127.0.0.1');

    // The list pages, so both servers page from the same positions.
    const listPages: ListPages = { cursors: [null], afterKeys: [null] };
    for (let page = 0; page < SEED_KEYS / 100 - 1; page++) {
      const res = await fetch(`${inProcess.url()}/graphql`, {
        method: 'POST',
        headers: gqlHeaders(token),
        body: JSON.stringify({
          query: `query($after: String) { recordList(namespace: "${READ_NS}", first: 100, after: $after) { edges { node { key } } pageInfo { endCursor } } }`,
          variables: { after: listPages.cursors[page] },
        }),
      });
      const body = (await res.json()) as any;
      const edges = body.data.recordList.edges as Array<{ node: { key: string } }>;
      listPages.cursors.push(body.data.recordList.pageInfo.endCursor);
      listPages.afterKeys.push(edges[edges.length - 1]!.node.key);
    }

    const inProcessTarget: Target = { kind: 'gateway', url: inProcess.url(), token, spreadTokens };
    const counted = await countStatements(inProcess, counter, [
      ...scenarios.map((s) => [s.name, scenarioDriver(s.name, inProcessTarget, listPages)] as [string, Driver]),
      ...(runGuardsOff ? [['put-guards-off', scenarioDriver('put-guards-off', inProcessTarget, listPages)] as [string, Driver]] : []),
    ]);
    await inProcess.close(1000);
    inProcess = undefined;
    for (const [name, c] of Object.entries(counted)) log(`SQL statements per ${name} request: ${c.perRequest}`);

    // The servers under test.
    const cpu = serverCpu();
    const profileDir = join(resultsDir, 'profiles', new Date().toISOString().replace(/[:.]/g, '-'));
    if (settings.profile) mkdirSync(profileDir, { recursive: true });
    log(`starting servers${cpu !== null ? ` pinned to CPU ${cpu} (taskset)` : ' (not pinned)'}${settings.profile ? ', gateway with --cpu-prof' : ''}`);
    const spawnedAt = performance.now();
    const [gateway, gatewayOpen, bare] = await Promise.all([
      startChild({
        name: 'gateway',
        script: 'src/main.ts',
        port: await freePort(),
        readyPath: '/readyz',
        cpu,
        nodeArgs: settings.profile ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [],
        env: { ...baseEnv, STORAGE_RATE_LIMIT_PER_SECOND: '1000000', STORAGE_RATE_LIMIT_BURST: '1000000' },
      }),
      runGuardsOff
        ? startChild({ name: 'gateway (guards off)', script: 'src/main.ts', port: await freePort(), readyPath: '/readyz', cpu, env: { ...baseEnv, STORAGE_RATE_LIMIT_PER_SECOND: '0' } })
        : Promise.resolve(undefined),
      startChild({
        name: 'bare',
        script: 'bench/bare-server.ts',
        port: await freePort(),
        readyPath: '/healthz',
        cpu,
        env: { BARE_DATABASE_URL: db.url, BARE_TENANT: tenantId, BARE_INSTALL: installId, BARE_POOL_MAX: '20' },
      }),
    ]);
    children.push(gateway, bare, ...(gatewayOpen ? [gatewayOpen] : []));
    const gwTarget: Target = { kind: 'gateway', url: gateway.url, token, spreadTokens };
    const bareTarget: Target = { kind: 'bare', url: bare.url, token: '' };

    // Prime every server with every scenario it will serve, so the first measured scenario does not
    // run on colder (not yet optimised) code than the later ones.
    if (settings.warmupSeconds > 0) {
      log(`priming: every scenario for ${settings.warmupSeconds} s on each server`);
      for (const s of scenarios) {
        await load(`prime gateway ${s.name}`, gateway, scenarioDriver(s.name, gwTarget, listPages), settings.warmupSeconds, false);
        await load(`prime bare ${s.name}`, bare, scenarioDriver(s.name, bareTarget, listPages), settings.warmupSeconds, false);
      }
    }

    const rows: Array<{ name: string; title: string; gateway: RunResult; bare: RunResult; rpsRatio: number; sqlPerRequest: number | null }> = [];
    for (const s of scenarios) {
      log(`scenario ${s.name}: ${s.title}`);
      const g = await measure(`gateway ${s.name}`, gateway, () => scenarioDriver(s.name, gwTarget, listPages));
      const b = await measure(`bare    ${s.name}`, bare, () => scenarioDriver(s.name, bareTarget, listPages));
      rows.push({ name: s.name, title: s.title, gateway: g, bare: b, rpsRatio: round(g.rps / Math.max(1, b.rps), 2), sqlPerRequest: counted[s.name]?.perRequest ?? null });
    }

    let guards: { on: RunResult; off: RunResult; rounds: Array<{ on: RunResult; off: RunResult }>; ratio: number; sqlOn: number | null; sqlOff: number | null } | undefined;
    if (runGuardsOff && gatewayOpen) {
      log('scenario put guards on vs off: conditional put; off = no schema, rate limiter off (audit and quotas stay on: they are part of the core)');
      const openTarget = { ...gwTarget, url: gatewayOpen.url };
      // The guards-off gateway is fresh: give it the traffic the other one had, then alternate on/off twice.
      await load('prime gateway (guards off)', gatewayOpen, scenarioDriver('put-guards-off', openTarget, listPages), Math.max(3, settings.warmupSeconds * scenarios.length), false);
      const rounds: Array<{ on: RunResult; off: RunResult }> = [];
      for (let pass = 1; pass <= 2; pass++) {
        const on = await measure(`gateway put guards on  #${pass}`, gateway, () => scenarioDriver('put', gwTarget, listPages));
        const off = await measure(`gateway put guards off #${pass}`, gatewayOpen, () => scenarioDriver('put-guards-off', openTarget, listPages));
        rounds.push({ on, off });
      }
      const on = mergeRuns(rounds.map((r) => r.on));
      const off = mergeRuns(rounds.map((r) => r.off));
      guards = { on, off, rounds, ratio: round(on.rps / Math.max(1, off.rps), 2), sqlOn: counted.put?.perRequest ?? null, sqlOff: counted['put-guards-off']?.perRequest ?? null };
    }

    await Promise.all(children.map((c) => c.stop()));
    let profile: ProfileSummary | undefined;
    if (settings.profile) {
      // The main thread's profile is the largest (tsx's loader worker writes a small one too).
      const file = readdirSync(profileDir)
        .filter((f) => f.endsWith('.cpuprofile'))
        .sort((a, b) => statSync(join(profileDir, b)).size - statSync(join(profileDir, a)).size)[0];
      if (file) profile = summarizeProfile(join(profileDir, file), 20, (firstMeasuredAt.get(gateway) ?? spawnedAt) - spawnedAt);
      else log('no .cpuprofile was written (did the gateway exit cleanly?)');
    }

    // ---------------------------------------------------------------- report
    const ms = (v: number | null) => (v === null ? null : v.toFixed(2));
    const lines: string[] = [];
    lines.push('');
    lines.push(
      `Gateway vs bare node:http + pg (same database and SQL), ${settings.connections} connections, ${settings.durationSeconds} s per run, ` +
        `servers ${cpu !== null ? `pinned to CPU ${cpu}` : 'not pinned'}, ${machine.cpus} CPUs, load average at start ${machine.loadavg.join(' ')}`,
    );
    lines.push('');
    lines.push(
      table(
        ['scenario', 'gw req/s', 'p50 ms', 'p95 ms', 'p99 ms', 'bare req/s', 'p50 ms', 'p95 ms', 'p99 ms', 'gw/bare', 'gw CPU µs/req', 'bare CPU µs/req', 'SQL/req', 'errors'],
        rows.map((r) => [
          r.name,
          r.gateway.rps,
          ms(r.gateway.p50),
          ms(r.gateway.p95),
          ms(r.gateway.p99),
          r.bare.rps,
          ms(r.bare.p50),
          ms(r.bare.p95),
          ms(r.bare.p99),
          r.rpsRatio.toFixed(2),
          r.gateway.cpuUsPerRequest,
          r.bare.cpuUsPerRequest,
          r.sqlPerRequest,
          Object.values(r.gateway.errors).reduce((s, v) => s + v, 0) + Object.values(r.bare.errors).reduce((s, v) => s + v, 0),
        ]),
      ),
    );
    lines.push('');
    lines.push('SQL/req: statements the gateway sends per request (BEGIN/COMMIT included), counted in process; the bare server sends 1.');
    lines.push('put: ifRevision is always given (0 for a fresh key, then the revision the previous answer returned), one key per in-flight request.');
    if (guards) {
      lines.push('');
      lines.push(
        table(
          ['put', 'req/s', 'p50 ms', 'p95 ms', 'p99 ms', 'CPU µs/req', 'SQL/req'],
          [
            ['guards on', guards.on.rps, ms(guards.on.p50), ms(guards.on.p95), ms(guards.on.p99), guards.on.cpuUsPerRequest, guards.sqlOn],
            ['guards off', guards.off.rps, ms(guards.off.p50), ms(guards.off.p95), ms(guards.off.p99), guards.off.cpuUsPerRequest, guards.sqlOff],
          ],
        ),
      );
      lines.push(`guards on / guards off (req/s): ${guards.ratio.toFixed(2)}  (two alternating runs of each, merged; both gateways primed)`);
      lines.push('guards on = JSON Schema on the namespace + rate limiter on (limit far above the load); guards off = no schema, rate limiter off.');
      lines.push('Audit events, quota checks and usage counters are part of the core and run in both.');
    }
    if (profile) {
      const perReq = settings.only.length === 1 ? (rows[0]?.gateway.cpuUsPerRequest ?? null) : null;
      lines.push('');
      lines.push(formatProfile(profile, perReq));
      if (perReq === null) lines.push('(µs/req shown only when one scenario runs: --only <name> --profile)');
    }
    process.stdout.write(lines.join('\n') + '\n');
    return {
      settings: { ...settings, pinnedCpu: cpu, servers: 'child processes (node --import tsx), logging to /dev/null' },
      scenarios: rows,
      statements: counted,
      guards,
      profile,
    };
  } finally {
    unregister();
    await cleanup();
  }
}

/** bench/results/latest.json: rewritten after each part, so a later failure keeps what was measured. */
function writeResults(results: Record<string, unknown>): void {
  mkdirSync(resultsDir, { recursive: true });
  const out = join(resultsDir, 'latest.json');
  writeFileSync(out, JSON.stringify({ at: new Date().toISOString(), ...results }, null, 2) + '\n');
  log(`results written to ${out}`);
}

async function main(): Promise<void> {
  const wanted = (name: string) => settings.only.length === 0 || settings.only.includes(name);
  const runGuardsOff = wanted('put-guards-off') || wanted('put');
  const scenarios = SCENARIOS.filter((s) => wanted(s.name));
  const machine = machineInfo();
  let results: Record<string, unknown> = { machine, settings };
  if (scenarios.length > 0 || runGuardsOff) {
    results = { machine, ...(await runGatewayVsBare(scenarios, runGuardsOff, machine)) };
    writeResults(results);
  }
  if (wanted(TTL_BACKLOG.name)) {
    log(`scenario ${TTL_BACKLOG.name}: ${TTL_BACKLOG.title}`);
    const ttlBacklog: TtlBacklogResult = await runTtlBacklog({
      records: settings.backlogRecords,
      putSeconds: settings.backlogPutSeconds,
      usageSeconds: settings.durationSeconds,
      warmupSeconds: settings.warmupSeconds,
      connections: settings.connections,
      load,
    });
    process.stdout.write(formatTtlBacklog(ttlBacklog).join('\n') + '\n');
    results = { ...results, ttlBacklog };
    writeResults(results);
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
