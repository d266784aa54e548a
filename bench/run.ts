/**
 * npm run bench: the gateway against a bare node:http + pg server running the least SQL for each
 * scenario, on one fresh PostgreSQL database, same load: wrk (bench/wrk.ts, 16 connections by
 * default), a C load generator pinned to the CPU(s) the servers do not use.
 *
 * Both servers run as child processes (`node --import tsx`), pinned to the same CPU with taskset
 * when there are at least two; only one is loaded at a time. The gateway runs with production
 * settings: JWT auth, the rate limiter on (with a limit far above the load), request logging on
 * (to /dev/null), JSON Schema on the written namespaces. Every server is primed with every scenario
 * first (so no scenario runs on colder code); then each scenario runs gateway, bare, bare, gateway
 * (A/B/B/A), each run after its own short warm-up. CPU per request comes from /proc (user + system,
 * all threads of the server process): on a shared machine it is steadier than requests per second.
 * Every answer is checked (bench/wrk/bench.lua): a non-2xx status, a GraphQL error or a typed
 * failure counts as an error, and a run with errors is not valid (exit status 1).
 *
 * The ttl-backlog scenario (bench/ttl-backlog.ts) runs after them, on its own database and gateway:
 * put and usage on an install with 100,000 expired, unswept records against one without.
 *
 * Flags (or env): --seconds (alias --duration)/BENCH_DURATION seconds per run (6), --warmup/BENCH_WARMUP (1),
 * --connections/BENCH_CONNECTIONS (16), --only/BENCH_SCENARIOS (comma list of scenario names; put-guards-off
 * runs only when named), --profile/BENCH_CPU_PROF=1 (writes a .cpuprofile of the gateway and prints where its
 * CPU went), --backlog-records/BENCH_TTL_BACKLOG_RECORDS (100000), --backlog-put-seconds/BENCH_TTL_PUT_SECONDS (3),
 * --documents/BENCH_DOCUMENTS (hash: the gateway's requests name their document by SHA-256, as the typed client
 * does; text: the whole query in every request).
 * DATABASE_URL: use that database (kept) instead of creating and dropping one. BENCH_PIN=0: no CPU pinning.
 *
 * Results: a table on stdout, progress on stderr, JSON in bench/results/latest.json.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { mintToken } from '../src/auth/credentials.js';
import { openMigratedDatabase } from '../src/bootstrap.js';
import { loadConfig } from '../src/config.js';
import { sha256Hex } from '../src/graphql/trusted-documents.js';
import { openDatabase, type DatabaseHandle } from '../src/db/database.js';
import { createApp, type App } from '../src/http/server.js';
import type { Caller } from '../src/storage/principal.js';
import { Storage } from '../src/storage/storage.js';
import { formatProfile, summarizeProfile, type ProfileSummary } from './profile.js';
import {
  benchDatabase,
  cpuSeconds,
  freePort,
  gatewayEnv,
  gatewayNodeArgs,
  gatewayPlan,
  generatorCpus,
  gqlHeaders,
  log,
  machineInfo,
  onInterrupt,
  resultsDir,
  round,
  serverCpu,
  startChild,
  table,
  type ChildServer,
  type RunResult,
} from './support.js';
import { formatTtlBacklog, runTtlBacklog, TTL_BACKLOG, type TtlBacklogResult } from './ttl-backlog.js';
import { jsonBody, jsonTexts, requireWrk, runWrk, type Body, type Plan, type Slot } from './wrk.js';

// ---------------------------------------------------------------- scenarios and settings

/** Installs the put16 scenario spreads its writes over (one install's writes are serialised). */
const SPREAD_INSTALLS = 16;

/** The gateway-vs-bare scenarios, in order; `goal` is the issue's target for gw/bare req/s. */
const SCENARIOS = [
  { name: 'noop', title: 'no-op query { __typename } (no SQL)', goal: null },
  { name: 'get', title: 'single get (record)', goal: 0.6 },
  { name: 'records100', title: 'records, 100 keys', goal: 0.8 },
  { name: 'list100', title: 'recordList first:100', goal: 0.8 },
  { name: 'put', title: 'unconditional put (upsert), all writers on one install', goal: 0.5 },
  { name: 'put-create', title: 'create-only put (ifRevision: 0, a fresh key per request), one install', goal: 0.4 },
  { name: 'put16', title: `unconditional put, each request on one of ${SPREAD_INSTALLS} installs`, goal: 0.5 },
  { name: 'bulk100', title: 'bulk put of 100 (unconditional)', goal: 0.3 },
  { name: 'commit10', title: 'commit of 10 puts (~1 KB values) across 2 namespaces of one install', goal: null },
  { name: 'increment', title: 'increment by 1 of one hot key', goal: null },
  { name: 'put-with-feed', title: 'the put scenario (every write also writes its change row) against a bare put that writes one too', goal: null },
  { name: 'changes100', title: 'a page of 100 changes (Runner REST changes) from one of 10 fixed positions', goal: null },
] as const;
type Scenario = (typeof SCENARIOS)[number];
type ScenarioName = Scenario['name'] | 'put-guards-off';

/** Runs only when named in --only: the put on a gateway without schema and rate limiter. */
const GUARDS_OFF = 'put-guards-off' as const;
const SCENARIO_NAMES: readonly string[] = [...SCENARIOS.map((s) => s.name), GUARDS_OFF, TTL_BACKLOG.name];

const { values: flags } = parseArgs({
  options: {
    seconds: { type: 'string' },
    duration: { type: 'string' },
    warmup: { type: 'string' },
    connections: { type: 'string' },
    only: { type: 'string' },
    profile: { type: 'boolean' },
    documents: { type: 'string' },
    'backlog-records': { type: 'string' },
    'backlog-put-seconds': { type: 'string' },
  },
});
const settings = {
  durationSeconds: Number(flags.seconds ?? flags.duration ?? process.env.BENCH_DURATION ?? 6),
  warmupSeconds: Number(flags.warmup ?? process.env.BENCH_WARMUP ?? 1),
  connections: Number(flags.connections ?? process.env.BENCH_CONNECTIONS ?? 16),
  only: (flags.only ?? process.env.BENCH_SCENARIOS ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean),
  profile: flags.profile === true || process.env.BENCH_CPU_PROF === '1',
  documents: (flags.documents ?? process.env.BENCH_DOCUMENTS ?? 'hash') as 'hash' | 'text',
  /** ttl-backlog: expired, unswept records seeded on install A. */
  backlogRecords: Number(flags['backlog-records'] ?? process.env.BENCH_TTL_BACKLOG_RECORDS ?? 100_000),
  /** ttl-backlog: seconds of puts per install (each put on A sweeps part of the backlog, so short). */
  backlogPutSeconds: Number(flags['backlog-put-seconds'] ?? process.env.BENCH_TTL_PUT_SECONDS ?? 3),
};
for (const [k, v] of Object.entries({
  seconds: settings.durationSeconds,
  warmup: settings.warmupSeconds,
  connections: settings.connections,
  'backlog-put-seconds': settings.backlogPutSeconds,
})) {
  if (!Number.isInteger(v) || v < 0 || (k !== 'warmup' && v === 0) || v > 3600) throw new Error(`bench: --${k} must be a whole number from ${k === 'warmup' ? 0 : 1} to 3600, got ${v}`);
}
if (settings.documents !== 'hash' && settings.documents !== 'text') throw new Error(`bench: --documents must be hash or text, got ${settings.documents}`);
if (!Number.isSafeInteger(settings.backlogRecords) || settings.backlogRecords < 100 || settings.backlogRecords > 10_000_000) {
  throw new Error(`bench: --backlog-records must be an integer from 100 to 10,000,000, got ${settings.backlogRecords}`);
}
const unknown = settings.only.filter((name) => !SCENARIO_NAMES.includes(name));
if (unknown.length > 0) throw new Error(`bench: unknown scenario ${unknown.join(', ')}; known: ${SCENARIO_NAMES.join(', ')}`);

// ---------------------------------------------------------------- data

const SEED_KEYS = 1000;
const READ_NS = 'bench';
const GUARDED_NS = 'guarded';
const OPEN_NS = 'open';
const BULK_NS = 'bulk';
/** The two namespaces commit10 writes to (schema on both). */
const COMMIT_NS = ['txa', 'txb'];
/** The namespace of increment's hot counter (no schema: VALUE_SCHEMA describes objects). */
const COUNTER_NS = 'counters';
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
/**
 * The values writes cycle through (about 200 bytes each, like the seeded ones): 101 of them, so a
 * put cycling over 1,000 keys writes a key with a different value each time round.
 */
const VALUES = jsonTexts(Array.from({ length: 101 }, (_, n) => valueOf(n)));
/** commit10's values: the same shape, about 1 KB each. */
const VALUES_1K = jsonTexts(Array.from({ length: 101 }, (_, n) => ({ ...valueOf(n), body: 'x'.repeat(950) })));
const SEED_KEY_TEXTS = jsonTexts(Array.from({ length: SEED_KEYS }, (_, i) => keyOf(i)));

const QUERIES = {
  noop: 'query Noop { __typename }',
  get: `query Get($key: String!) { record(namespace: "${READ_NS}", key: $key) { ${RECORD_FIELDS} } }`,
  records: `query GetMany($keys: [String!]!) { records(namespace: "${READ_NS}", keys: $keys) { ${RECORD_FIELDS} } }`,
  list: `query List($after: String) { recordList(namespace: "${READ_NS}", first: 100, after: $after) {
    edges { cursor node { ${RECORD_FIELDS} } } pageInfo { hasNextPage endCursor } } }`,
  put: `mutation Put($input: PutRecordInput!) { putRecord(input: $input) { __typename
    ... on PutRecordSuccess { record { key revision updatedAt } } } }`,
  bulk: `mutation Bulk($input: BulkPutRecordsInput!) { bulkPutRecords(input: $input) { __typename
    ... on BulkPutRecordsSuccess { records { key revision } } } }`,
  commit: `mutation Commit($input: CommitInput!) { commit(input: $input) { __typename
    ... on CommitSuccess { records { key revision } committed } } }`,
  increment: `mutation Increment($input: IncrementRecordInput!) { incrementRecord(input: $input) { __typename
    ... on PutRecordSuccess { record { key revision value } } } }`,
};

/**
 * How the gateway's requests name their document (--documents/BENCH_DOCUMENTS): `hash` (default) as
 * the typed client does, by SHA-256 (trusted documents; the bench's documents reach the gateway as an
 * operator manifest, STORAGE_TRUSTED_DOCUMENTS_FILE), or `text`, the whole query in every request.
 */
const MANIFEST: Record<string, string> = Object.fromEntries(Object.values(QUERIES).map((q) => [`sha256:${sha256Hex(q)}`, q]));
function gql(query: string, variables?: Record<string, unknown>): Record<string, unknown> {
  if (settings.documents === 'text') return variables ? { query, variables } : { query };
  const extensions = { persistedQuery: { version: 1, sha256Hash: sha256Hex(query) } };
  return variables ? { variables, extensions } : { extensions };
}

// ---------------------------------------------------------------- request plans

interface Target {
  kind: 'gateway' | 'bare';
  /** The main install's id (the Runner door names it in its path). */
  installId: string;
  /** The install every scenario but put16 uses: its token (gateway) or id (bare). */
  install: string;
  /** The put16 installs: tokens (gateway) or ids (bare, sent in x-install-id). */
  spread: string[];
}

interface ListPages {
  cursors: Array<string | null>;
  afterKeys: Array<string | null>;
  /** changes100: the positions of the main install's first 10 pages of 100 changes (its seeding), as cursors and as numbers. */
  changeCursors: Array<string | null>;
  changeAfters: number[];
}

/** The Runner token of the bench's gateways (changes100 reads through the Runner's REST door). */
const RUNNER_TOKEN = `bench-runner-${randomBytes(12).toString('hex')}`;

/** A request of the Runner's REST door for the main install. */
function runnerPlan(installId: string, body: Body): Plan {
  return { path: `/api/internal/ext-storage/install/${installId}`, headers: { 'content-type': 'application/json', 'x-runner-auth': RUNNER_TOKEN }, body, failures: [] };
}

/** A request of the bare server (a plain JSON body; its own install, or one of `spread` per request). */
function barePlan(path: string, body: Body, spread?: string[]): Plan {
  return { path, headers: { 'content-type': 'application/json' }, pick: spread && { header: 'x-install-id', values: spread }, body, failures: [] };
}

/** What one scenario sends to one server. Writes use keys of their own per server, so neither rewrites the other's rows. */
function scenarioPlan(name: ScenarioName, t: Target, listPages: ListPages): Plan {
  const gw = t.kind === 'gateway';
  const own = (tag: string) => `${tag}${gw ? 'g' : 'b'}-`;
  /** A put: the gateway's putRecord or the bare server's /put, with the same input. */
  const put = (namespace: string, key: Slot, extra: Record<string, unknown>, spread: boolean, barePath = '/put') => {
    const body = jsonBody((slot) => {
      const input = { namespace, key: slot(key), value: slot({ kind: 'cycle', items: VALUES }), metadata: METADATA, ...extra };
      return gw ? gql(QUERIES.put, { input }) : input;
    });
    return gw ? gatewayPlan(spread ? t.spread : t.install, body) : barePlan(barePath, body, spread ? t.spread : undefined);
  };
  /** Unconditional puts cycle over 1,000 keys of their own (updates once each key exists). */
  const upsertKeys = (): Slot => ({ kind: 'cycle', items: jsonTexts(Array.from({ length: SEED_KEYS }, (_, i) => own('u') + keyOf(i))) });
  switch (name) {
    case 'noop':
      // The floor: credential, rate limit, GraphQL parse/validate/execute of `{ __typename }`, log line; no SQL.
      return gw ? gatewayPlan(t.install, jsonBody(() => gql(QUERIES.noop))) : barePlan('/noop', jsonBody(() => ({})));
    case 'get': {
      const key: Slot = { kind: 'random', items: SEED_KEY_TEXTS };
      return gw
        ? gatewayPlan(t.install, jsonBody((slot) => gql(QUERIES.get, { key: slot(key) })))
        : barePlan('/get', jsonBody((slot) => ({ namespace: READ_NS, key: slot(key) })));
    }
    case 'records100': {
      const keys: Slot = { kind: 'window', items: SEED_KEY_TEXTS, size: 100 };
      return gw
        ? gatewayPlan(t.install, jsonBody((slot) => gql(QUERIES.records, { keys: slot(keys) })))
        : barePlan('/records', jsonBody((slot) => ({ namespace: READ_NS, keys: slot(keys) })));
    }
    case 'list100':
      return gw
        ? gatewayPlan(t.install, jsonBody((slot) => gql(QUERIES.list, { after: slot({ kind: 'random', items: jsonTexts(listPages.cursors) }) })))
        : barePlan('/list', jsonBody((slot) => ({ namespace: READ_NS, first: 100, afterKey: slot({ kind: 'random', items: jsonTexts(listPages.afterKeys) }) })));
    case 'put':
      return put(GUARDED_NS, upsertKeys(), {}, false);
    case 'put-create':
      // A nonce per run: keys never repeat, even across runs on one database.
      return put(GUARDED_NS, { kind: 'unique', prefix: own(`c${randomBytes(4).toString('hex')}`) }, { ifRevision: 0 }, false);
    case 'put16':
      return put(GUARDED_NS, upsertKeys(), {}, true);
    case GUARDS_OFF:
      return put(OPEN_NS, upsertKeys(), {}, false);
    case 'bulk100': {
      // Each batch writes one of 4 × connections fixed windows of 100 keys per wrk thread: batches in
      // flight at once use different windows (or, rarely, the very same one), never overlapping ones.
      const items: Slot = { kind: 'bulk', prefix: own('w'), size: 100, windows: 4 * settings.connections, values: VALUES, metadata: JSON.stringify(METADATA) };
      return gw
        ? gatewayPlan(t.install, jsonBody((slot) => gql(QUERIES.bulk, { input: { namespace: BULK_NS, items: slot(items) } })))
        : barePlan('/bulk', jsonBody((slot) => ({ namespace: BULK_NS, items: slot(items) })));
    }
    case 'commit10': {
      // Windows of 10 keys per wrk thread, as bulk100's: commits in flight at once never partly overlap,
      // and every commit writes its keys in the same order, so the bare server's transactions cannot deadlock.
      const operations: Slot = { kind: 'commit', prefix: own('t'), size: 10, windows: 4 * settings.connections, values: VALUES_1K, metadata: JSON.stringify(METADATA), namespaces: COMMIT_NS };
      return gw
        ? gatewayPlan(t.install, jsonBody((slot) => gql(QUERIES.commit, { input: { operations: slot(operations) } })))
        : barePlan('/commit', jsonBody((slot) => ({ operations: slot(operations) })));
    }
    case 'put-with-feed':
      // The gateway's put is the put scenario's (its write function writes the change row since
      // migration 009); the bare put writes one too: upsert, lock-row counter, change row.
      return put(GUARDED_NS, upsertKeys(), {}, false, '/put-feed');
    case 'changes100':
      return gw
        ? runnerPlan(t.installId, jsonBody((slot) => ({ operation: 'changes', limit: 100, cursor: slot({ kind: 'random', items: jsonTexts(listPages.changeCursors) }) })))
        : barePlan('/changes', jsonBody((slot) => ({ first: 100, after: slot({ kind: 'random', items: jsonTexts(listPages.changeAfters) }) })));
    case 'increment': {
      const input = { namespace: COUNTER_NS, key: own('hot'), by: 1 };
      return gw ? gatewayPlan(t.install, jsonBody(() => gql(QUERIES.increment, { input }))) : barePlan('/increment', jsonBody(() => input));
    }
  }
}

// ---------------------------------------------------------------- running one load

/** Runs a plan for `seconds` (or until `maxAnswers` answers, when given) against a server and measures it. */
async function load(server: ChildServer, plan: Plan, seconds: number, maxAnswers?: number): Promise<RunResult> {
  const cpuBefore = cpuSeconds(server.pid);
  const r = await runWrk(server.url, plan, { connections: settings.connections, seconds, cpus: generatorCpus(), maxAnswers });
  const cpuAfter = cpuSeconds(server.pid);
  const perRequest = (cpu: number) => (r.requests > 0 ? round((cpu / r.requests) * 1e6, 0) : null);
  return {
    requests: r.requests,
    seconds: round(r.seconds, 2),
    rps: round(r.requests / r.seconds, 0),
    p50: round(r.p50, 3),
    p95: round(r.p95, 3),
    p99: round(r.p99, 3),
    errors: r.failures,
    errorSample: r.sample,
    cpuUsPerRequest: cpuBefore !== null && cpuAfter !== null ? perRequest(cpuAfter - cpuBefore) : null,
    generatorCpuUsPerRequest: perRequest(r.cpuSeconds),
  };
}

/** Several runs of one configuration as one: total answers over total time, CPU per answer over all, mean of the percentiles. */
function mergeRuns(runs: RunResult[]): RunResult {
  const requests = runs.reduce((a, r) => a + r.requests, 0);
  const seconds = runs.reduce((a, r) => a + r.seconds, 0);
  const mean = (pick: (r: RunResult) => number | null) => {
    const v = runs.map(pick).filter((x): x is number => x !== null);
    return v.length === 0 ? null : round(v.reduce((a, b) => a + b, 0) / v.length, 3);
  };
  const perAnswer = (pick: (r: RunResult) => number | null) => {
    if (requests === 0 || runs.some((r) => pick(r) === null)) return null;
    return round(runs.reduce((a, r) => a + pick(r)! * r.requests, 0) / requests, 0);
  };
  const errors: Record<string, number> = {};
  for (const r of runs) for (const [k, v] of Object.entries(r.errors)) errors[k] = (errors[k] ?? 0) + v;
  return {
    requests,
    seconds: round(seconds, 2),
    rps: round(requests / seconds, 0),
    p50: mean((r) => r.p50),
    p95: mean((r) => r.p95),
    p99: mean((r) => r.p99),
    errors,
    errorSample: runs.find((r) => r.errorSample !== null)?.errorSample ?? null,
    cpuUsPerRequest: perAnswer((r) => r.cpuUsPerRequest),
    generatorCpuUsPerRequest: perAnswer((r) => r.generatorCpuUsPerRequest),
  };
}

const errorCount = (r: RunResult) => Object.values(r.errors).reduce((s, v) => s + v, 0);

/** When each server's first measured (post warm-up) run started: the profile summary skips what came before. */
const firstMeasuredAt = new Map<ChildServer, number>();

async function measure(label: string, server: ChildServer, plan: () => Plan): Promise<RunResult> {
  if (settings.warmupSeconds > 0) await load(server, plan(), settings.warmupSeconds);
  if (!firstMeasuredAt.has(server)) firstMeasuredAt.set(server, performance.now());
  const r = await load(server, plan(), settings.durationSeconds);
  const errs = Object.entries(r.errors).map(([k, v]) => `${k}=${v}`).join(' ');
  log(
    `  ${label.padEnd(28)} ${String(r.rps).padStart(6)} req/s  p50 ${r.p50} ms  p99 ${r.p99} ms  cpu ${r.cpuUsPerRequest ?? '?'} µs/req  wrk ${r.generatorCpuUsPerRequest ?? '?'} µs/req` +
      (errs ? `  errors: ${errs}` : ''),
  );
  return r;
}

// ---------------------------------------------------------------- SQL statements per request (in process)

interface StatementCount {
  perRequest: number;
  /** The distinct statements the counted requests sent, in order of first use. */
  statements: string[];
}

/**
 * Sends each scenario's requests, one at a time, to an in-process gateway whose Kysely observer
 * counts statements: 2 answers to warm caches, then 20 counted. A failed answer stops the bench
 * here, before anything is measured.
 */
async function countStatements(app: App, counter: { n: number; sql: string[] }, plans: Array<[string, () => Plan]>): Promise<Record<string, StatementCount>> {
  const out: Record<string, StatementCount> = {};
  const url = app.url();
  const run = async (name: string, plan: Plan, answers: number) => {
    const r = await runWrk(url, plan, { connections: 1, seconds: 60, cpus: generatorCpus(), maxAnswers: answers });
    if (Object.keys(r.failures).length > 0 || r.requests === 0) throw new Error(`statement count for ${name}: ${JSON.stringify(r.failures)} ${r.sample ?? 'no answer'}`);
    return r.requests;
  };
  for (const [name, plan] of plans) {
    // Warm-up: a plan that picks an install per request (put16) first meets each install once (its
    // install and schema reads): 200 random picks miss one of 16 with odds of about 1 in 25,000.
    const first = plan();
    await run(name, first, first.pick ? 200 : 2);
    counter.n = 0;
    counter.sql = [];
    const answers = await run(name, plan(), 20);
    out[name] = { perRequest: round(counter.n / answers, 2), statements: [...new Set(counter.sql)] };
  }
  return out;
}

// ---------------------------------------------------------------- gateway vs bare

interface Row {
  name: string;
  title: string;
  goal: number | null;
  gateway: RunResult;
  bare: RunResult;
  rpsRatio: number;
  /** The ratio of each A/B pair (gateway #1 / bare #1, gateway #2 / bare #2): how far one run's ratio moves. */
  pairRatios: [number, number];
  goalMet: boolean | null;
  sqlPerRequest: number | null;
  /** The A/B/B/A runs: gateway #1, bare #1, bare #2, gateway #2. */
  runs: RunResult[];
}

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
    mkdirSync(resultsDir, { recursive: true });
    const manifestFile = join(resultsDir, 'bench-documents.json');
    writeFileSync(manifestFile, JSON.stringify(MANIFEST, null, 2));
    const baseEnv = gatewayEnv(db.url, secret, { STORAGE_DB_POOL_MAX: '20', RUNNER_AUTH_TOKENS: RUNNER_TOKEN, STORAGE_TRUSTED_DOCUMENTS_FILE: manifestFile });
    const config = loadConfig({ ...baseEnv, LOG_LEVEL: 'silent', STORAGE_RATE_LIMIT_PER_SECOND: '1000000', STORAGE_RATE_LIMIT_BURST: '1000000' });
    const database = await openMigratedDatabase(config);
    handles.push(database);

    // Seed: one tenant, one install with room to grow, 1,000 records to read, schemas on the written
    // namespaces; SPREAD_INSTALLS more installs for put16.
    const tenantId = randomUUID();
    const installId = randomUUID();
    const admin: Caller = { principal: { kind: 'admin', tenantId, actor: 'bench' }, requestId: null };
    const storage = new Storage(database.db, config);
    const quota = { maxKeysPerNamespace: 1_000_000, maxBytes: 64 * 1024 ** 3, maxNamespaces: 100 };
    await storage.upsertInstall(admin, { id: installId, extensionId: 'bench', enabled: true, canRead: true, canWrite: true, quota });
    for (let start = 0; start < SEED_KEYS; start += 100) {
      const items = Array.from({ length: Math.min(100, SEED_KEYS - start) }, (_, i) => ({ key: keyOf(start + i), value: valueOf(start + i), metadata: METADATA }));
      await storage.bulkPutRecords(admin, { installId, namespace: READ_NS, items });
    }
    for (const namespace of [GUARDED_NS, BULK_NS, ...COMMIT_NS]) await storage.setNamespaceSchema(admin, { installId, namespace, schema: VALUE_SCHEMA });
    const tokenOf = (iid: string) => mintToken(secret, { sub: 'bench-extension', tid: tenantId, role: 'extension', iid, scope: 'storage:read storage:write', expiresIn: '6h' });
    const token = await tokenOf(installId);
    const spreadInstalls: string[] = [];
    const spreadTokens: string[] = [];
    for (let i = 0; i < SPREAD_INSTALLS; i++) {
      const id = randomUUID();
      await storage.upsertInstall(admin, { id, extensionId: 'bench', enabled: true, canRead: true, canWrite: true, quota });
      await storage.setNamespaceSchema(admin, { installId: id, namespace: GUARDED_NS, schema: VALUE_SCHEMA });
      spreadInstalls.push(id);
      spreadTokens.push(await tokenOf(id));
    }
    log(`seeded: install ${installId}, ${SEED_KEYS} records in "${READ_NS}", schema on "${GUARDED_NS}", "${BULK_NS}" and ${COMMIT_NS.map((n) => `"${n}"`).join(', ')}, ${SPREAD_INSTALLS} more installs for put16`);

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
    const listPages: ListPages = { cursors: [null], afterKeys: [null], changeCursors: [null], changeAfters: [0] };
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

    // The change pages, from the core: the seeding's 1,000 puts are the install's first 1,000 changes.
    const feedScope = await storage.resolveInstall(admin, installId, 'read');
    for (let page = 0; page < SEED_KEYS / 100 - 1; page++) {
      const p = await storage.changes(admin, feedScope, { after: listPages.changeCursors[page], first: 100 });
      if (p.changes.length !== 100) throw new Error(`changes100: page ${page} holds ${p.changes.length} changes, not 100`);
      listPages.changeCursors.push(p.endCursor);
      listPages.changeAfters.push(p.changes[p.changes.length - 1]!.seq);
    }

    const gwTarget: Target = { kind: 'gateway', installId, install: token, spread: spreadTokens };
    const bareTarget: Target = { kind: 'bare', installId, install: installId, spread: spreadInstalls };
    const names: ScenarioName[] = [...scenarios.map((s) => s.name), ...(runGuardsOff ? [GUARDS_OFF] : [])];
    const counted = await countStatements(
      inProcess,
      counter,
      names.map((name) => [name, () => scenarioPlan(name, gwTarget, listPages)]),
    );
    await inProcess.close(1000);
    inProcess = undefined;
    for (const [name, c] of Object.entries(counted)) log(`SQL statements per ${name} request: ${c.perRequest}`);

    // The servers under test.
    const cpu = serverCpu();
    const wrkCpus = generatorCpus();
    const profileDir = join(resultsDir, 'profiles', new Date().toISOString().replace(/[:.]/g, '-'));
    if (settings.profile) mkdirSync(profileDir, { recursive: true });
    log(`starting servers${cpu !== null ? ` pinned to CPU ${cpu} (taskset), wrk on CPU ${wrkCpus?.list}` : ' (not pinned)'}${settings.profile ? ', gateway with --cpu-prof' : ''}`);
    const spawnedAt = performance.now();
    const [gateway, gatewayOpen, bare] = await Promise.all([
      startChild({
        name: 'gateway',
        script: 'src/main.ts',
        port: await freePort(),
        readyPath: '/readyz',
        cpu,
        nodeArgs: [...gatewayNodeArgs(), ...(settings.profile ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [])],
        env: { ...baseEnv, STORAGE_RATE_LIMIT_PER_SECOND: '1000000', STORAGE_RATE_LIMIT_BURST: '1000000' },
      }),
      runGuardsOff
        ? startChild({ name: 'gateway (guards off)', script: 'src/main.ts', port: await freePort(), readyPath: '/readyz', cpu, nodeArgs: gatewayNodeArgs(), env: { ...baseEnv, STORAGE_RATE_LIMIT_PER_SECOND: '0' } })
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

    // Prime every server with every scenario it will serve, so the first measured scenario does not
    // run on colder (not yet optimised) code than the later ones.
    if (settings.warmupSeconds > 0) {
      log(`priming: every scenario for ${settings.warmupSeconds} s on each server`);
      for (const s of scenarios) {
        await load(gateway, scenarioPlan(s.name, gwTarget, listPages), settings.warmupSeconds);
        await load(bare, scenarioPlan(s.name, bareTarget, listPages), settings.warmupSeconds);
      }
    }

    const rows: Row[] = [];
    for (const s of scenarios) {
      log(`scenario ${s.name}: ${s.title}`);
      const gw = () => scenarioPlan(s.name, gwTarget, listPages);
      const br = () => scenarioPlan(s.name, bareTarget, listPages);
      const runs = [
        await measure(`gateway ${s.name} #1`, gateway, gw),
        await measure(`bare    ${s.name} #1`, bare, br),
        await measure(`bare    ${s.name} #2`, bare, br),
        await measure(`gateway ${s.name} #2`, gateway, gw),
      ];
      const g = mergeRuns([runs[0]!, runs[3]!]);
      const b = mergeRuns([runs[1]!, runs[2]!]);
      const rpsRatio = round(g.rps / Math.max(1, b.rps), 2);
      const pairRatios: [number, number] = [round(runs[0]!.rps / Math.max(1, runs[1]!.rps), 2), round(runs[3]!.rps / Math.max(1, runs[2]!.rps), 2)];
      rows.push({ name: s.name, title: s.title, goal: s.goal, gateway: g, bare: b, rpsRatio, pairRatios, goalMet: s.goal === null ? null : rpsRatio >= s.goal, sqlPerRequest: counted[s.name]?.perRequest ?? null, runs });
    }

    let guards: { on: RunResult; off: RunResult; ratio: number; sqlOn: number | null; sqlOff: number | null } | undefined;
    if (gatewayOpen) {
      log(`scenario ${GUARDS_OFF}: unconditional put, guards on vs off; off = no schema, rate limiter off (audit and quotas stay on: they are part of the core)`);
      const openPlan = () => scenarioPlan(GUARDS_OFF, gwTarget, listPages);
      const onPlan = () => scenarioPlan('put', gwTarget, listPages);
      // The guards-off gateway is fresh: give it the traffic the other one had, then alternate on/off twice.
      await load(gatewayOpen, openPlan(), Math.max(3, settings.warmupSeconds * scenarios.length));
      const on: RunResult[] = [];
      const off: RunResult[] = [];
      for (let pass = 1; pass <= 2; pass++) {
        on.push(await measure(`gateway put guards on  #${pass}`, gateway, onPlan));
        off.push(await measure(`gateway put guards off #${pass}`, gatewayOpen, openPlan));
      }
      const [onRun, offRun] = [mergeRuns(on), mergeRuns(off)];
      guards = { on: onRun, off: offRun, ratio: round(onRun.rps / Math.max(1, offRun.rps), 2), sqlOn: counted.put?.perRequest ?? null, sqlOff: counted[GUARDS_OFF]?.perRequest ?? null };
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
      `Gateway vs bare node:http + pg (same database, least SQL), wrk with ${settings.connections} connections, ${settings.durationSeconds} s per run, A/B/B/A, ` +
        `gateway documents by ${settings.documents === 'hash' ? 'hash (trusted documents)' : 'text'}, ` +
        `servers ${cpu !== null ? `pinned to CPU ${cpu}, wrk to CPU ${wrkCpus?.list}` : 'and wrk not pinned'}, ${machine.cpus} CPUs, load average at start ${machine.loadavg.join(' ')}`,
    );
    lines.push('');
    if (rows.length > 0) {
      lines.push(
        table(
          ['scenario', 'gw req/s', 'bare req/s', 'gw/bare', 'pairs', 'goal', 'met', 'gw p50 ms', 'gw p99 ms', 'bare p50 ms', 'bare p99 ms', 'gw CPU µs/req', 'bare CPU µs/req', 'SQL/req', 'errors'],
          rows.map((r) => [
            r.name,
            r.gateway.rps,
            r.bare.rps,
            r.rpsRatio.toFixed(2),
            `${Math.min(...r.pairRatios).toFixed(2)}–${Math.max(...r.pairRatios).toFixed(2)}`,
            r.goal === null ? null : `≥ ${r.goal.toFixed(2)}`,
            r.goalMet === null ? null : r.goalMet ? 'yes' : 'MISS',
            ms(r.gateway.p50),
            ms(r.gateway.p99),
            ms(r.bare.p50),
            ms(r.bare.p99),
            r.gateway.cpuUsPerRequest,
            r.bare.cpuUsPerRequest,
            r.sqlPerRequest,
            errorCount(r.gateway) + errorCount(r.bare),
          ]),
        ),
      );
      lines.push('');
      lines.push('req/s: answers over both runs of a side; pairs: the ratio of gateway #1 to bare #1 and of gateway #2 to bare #2 (lowest–highest), how much one pair moves run to run;');
      lines.push('p50/p99: mean of the two runs; CPU µs/req: server CPU (user + system, /proc) over both runs\' answers.');
      lines.push('SQL/req: statements the gateway sends per request (BEGIN/COMMIT included), counted in process, one request at a time; the bare server sends 1 (commit10: BEGIN, 10 upserts, COMMIT).');
      const wrkCpu = rows.flatMap((r) => r.runs.map((run) => run.generatorCpuUsPerRequest)).filter((v): v is number => v !== null);
      if (wrkCpu.length > 0) lines.push(`wrk's own CPU: ${Math.min(...wrkCpu)}–${Math.max(...wrkCpu)} µs per request.`);
    }
    if (guards) {
      lines.push('');
      lines.push(
        table(
          ['put', 'req/s', 'p50 ms', 'p95 ms', 'p99 ms', 'CPU µs/req', 'SQL/req', 'errors'],
          [
            ['guards on', guards.on.rps, ms(guards.on.p50), ms(guards.on.p95), ms(guards.on.p99), guards.on.cpuUsPerRequest, guards.sqlOn, errorCount(guards.on)],
            ['guards off', guards.off.rps, ms(guards.off.p50), ms(guards.off.p95), ms(guards.off.p99), guards.off.cpuUsPerRequest, guards.sqlOff, errorCount(guards.off)],
          ],
        ),
      );
      lines.push(`guards on / guards off (req/s): ${guards.ratio.toFixed(2)}  (two alternating runs of each, merged; both gateways primed)`);
      lines.push('guards on = JSON Schema on the namespace + rate limiter on (limit far above the load); guards off = no schema, rate limiter off.');
      lines.push('Audit events, quota checks and usage counters are part of the core and run in both.');
    }
    const misses = rows.filter((r) => r.goalMet === false).map((r) => r.name);
    if (rows.some((r) => r.goal !== null)) lines.push(misses.length === 0 ? 'goals: all met' : `goals missed: ${misses.join(', ')}`);
    const failed: Array<[string, RunResult]> = [
      ...rows.flatMap((r): Array<[string, RunResult]> => [[`gateway ${r.name}`, r.gateway], [`bare ${r.name}`, r.bare]]),
      ...(guards ? ([['gateway put guards on', guards.on], ['gateway put guards off', guards.off]] as Array<[string, RunResult]>) : []),
    ].filter(([, r]) => errorCount(r) > 0);
    for (const [label, r] of failed) {
      lines.push(`errors in ${label}: ${Object.entries(r.errors).map(([k, v]) => `${k}=${v}`).join(' ')}; first: ${r.errorSample ?? '–'}`);
    }
    if (profile) {
      const perReq = settings.only.length === 1 ? (rows[0]?.gateway.cpuUsPerRequest ?? null) : null;
      lines.push('');
      lines.push(formatProfile(profile, perReq));
      if (perReq === null) lines.push('(µs/req shown only when one scenario runs: --only <name> --profile)');
    }
    process.stdout.write(lines.join('\n') + '\n');
    return {
      settings: { ...settings, pinnedCpu: cpu, wrkCpus: wrkCpus?.list ?? null, servers: 'child processes (node --import tsx), logging to /dev/null', loadGenerator: 'wrk' },
      scenarios: rows,
      statements: counted,
      guards,
      profile,
      errors: failed.length,
    };
  } finally {
    unregister();
    await cleanup();
  }
}

// ---------------------------------------------------------------- main

/** bench/results/latest.json: rewritten after each part, so a later failure keeps what was measured. */
function writeResults(results: Record<string, unknown>): void {
  mkdirSync(resultsDir, { recursive: true });
  const out = join(resultsDir, 'latest.json');
  writeFileSync(out, JSON.stringify({ at: new Date().toISOString(), ...results }, null, 2) + '\n');
  log(`results written to ${out}`);
}

async function main(): Promise<void> {
  requireWrk();
  const wanted = (name: string) => (settings.only.length === 0 ? name !== GUARDS_OFF : settings.only.includes(name));
  const runGuardsOff = wanted(GUARDS_OFF);
  const scenarios = SCENARIOS.filter((s) => wanted(s.name));
  const machine = machineInfo();
  let results: Record<string, unknown> = { machine, settings };
  let invalid = false;
  if (scenarios.length > 0 || runGuardsOff) {
    const part = await runGatewayVsBare(scenarios, runGuardsOff, machine);
    invalid ||= part.errors !== 0;
    results = { machine, ...part };
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
    invalid ||= [ttlBacklog.usage, ttlBacklog.put].some((c) => errorCount(c.withBacklog) + errorCount(c.withoutBacklog) > 0);
    results = { ...results, ttlBacklog };
    writeResults(results);
  }
  if (invalid) {
    log('NOT VALID: some answers failed (see "errors" above); a benchmark with errors measures something else');
    process.exitCode = 1;
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
