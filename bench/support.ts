/** What the benchmark and the load test share: a throwaway database, child servers, CPU and percentile maths. */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { availableParallelism, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import type { Body, Plan } from './wrk.js';

export const repoRoot = fileURLToPath(new URL('..', import.meta.url));
export const resultsDir = fileURLToPath(new URL('./results/', import.meta.url));

export function log(message: string): void {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

// ---------------------------------------------------------------- database

export interface BenchDatabase {
  url: string;
  /** True when this run created the database (and drops it at the end). */
  created: boolean;
  drop(): Promise<void>;
}

/** DATABASE_URL when given (kept), else a fresh database on the local server (dropped by drop()). */
export async function benchDatabase(prefix: string): Promise<BenchDatabase> {
  const given = process.env.DATABASE_URL?.trim();
  if (given) return { url: given, created: false, drop: async () => undefined };
  const adminUrl = process.env.BENCH_ADMIN_DATABASE_URL ?? process.env.TEST_DATABASE_URL ?? 'postgres://root@127.0.0.1:5432/postgres';
  const name = `${prefix}_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 5000 });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const u = new URL(adminUrl);
  u.pathname = `/${name}`;
  let dropped = false;
  return {
    url: u.toString(),
    created: true,
    async drop() {
      if (dropped) return;
      dropped = true;
      const c = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 5000 });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

// ---------------------------------------------------------------- child servers

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export interface ChildServer {
  name: string;
  url: string;
  pid: number;
  child: ChildProcess;
  /** The last few KB the child wrote to stderr (for error reports). */
  stderrTail(): string;
  stop(): Promise<void>;
}

/** Which CPU to pin servers to (`taskset`), or null: BENCH_PIN=0 turns pinning off. */
export function serverCpu(): number | null {
  if (process.env.BENCH_PIN === '0' || availableParallelism() < 2) return null;
  try {
    execFileSync('taskset', ['-V'], { stdio: 'ignore' });
  } catch {
    return null;
  }
  return availableParallelism() - 1;
}

/** The CPUs the servers are not pinned to (for the load generator), as a taskset list, or null when servers are not pinned. */
export function generatorCpus(): { list: string; count: number } | null {
  const server = serverCpu();
  return server === null ? null : { list: server === 1 ? '0' : `0-${server - 1}`, count: server };
}

/** Extra node flags for the gateway child (BENCH_GATEWAY_NODE_ARGS, space-separated), e.g. `--max-semi-space-size=64`. */
export function gatewayNodeArgs(): string[] {
  return (process.env.BENCH_GATEWAY_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);
}

/** Starts `node --import tsx <script>` (optionally pinned to one CPU); resolves once `readyPath` answers 200. */
export async function startChild(opts: {
  name: string;
  script: string;
  env: Record<string, string>;
  port: number;
  readyPath: string;
  cpu?: number | null;
  nodeArgs?: string[];
}): Promise<ChildServer> {
  const nodeArgv = [...(opts.nodeArgs ?? []), '--import', 'tsx', opts.script];
  const [cmd, args] = opts.cpu !== null && opts.cpu !== undefined ? ['taskset', ['-c', String(opts.cpu), process.execPath, ...nodeArgv]] : [process.execPath, nodeArgv];
  // Logs go to /dev/null: the child still formats and writes every line, as in production.
  const child = spawn(cmd as string, args as string[], {
    cwd: repoRoot,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...opts.env, PORT: String(opts.port), HOST: '127.0.0.1' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let tail = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    tail = (tail + chunk.toString('utf8')).slice(-4000);
  });
  const url = `http://127.0.0.1:${opts.port}`;
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${opts.name} exited during start (${child.exitCode}): ${tail}`);
    try {
      const res = await fetch(url + opts.readyPath, { signal: AbortSignal.timeout(1000) });
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`${opts.name} did not become ready within 60 s: ${tail}`);
    }
    await sleep(150);
  }
  return {
    name: opts.name,
    url,
    pid: child.pid!,
    child,
    stderrTail: () => tail,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Environment of a gateway child: production settings, logging on (to /dev/null), no GraphiQL. */
export function gatewayEnv(databaseUrl: string, jwtSecret: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    DATABASE_URL: databaseUrl,
    STORAGE_JWT_SECRET: jwtSecret,
    NODE_ENV: 'production',
    LOG_LEVEL: 'info',
    STORAGE_GRAPHIQL: 'false',
    ...extra,
  };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// ---------------------------------------------------------------- what bench/run.ts and its scenarios send

/** One measured run of a plan against a server. */
export interface RunResult {
  requests: number;
  seconds: number;
  rps: number;
  /** Latency percentiles (ms). */
  p50: number | null;
  p95: number | null;
  p99: number | null;
  /** Failed answers by kind (see bench/wrk.ts); a run with any is not valid. */
  errors: Record<string, number>;
  /** The first failed answer, for the report. */
  errorSample: string | null;
  /** Server CPU (user + system, all threads) per request, µs. */
  cpuUsPerRequest: number | null;
  /** The load generator's own CPU per request, µs. */
  generatorCpuUsPerRequest: number | null;
}

export const gqlHeaders = (token: string) => ({ 'content-type': 'application/json', authorization: `Bearer ${token}` });

/** The gateway's typed failures: an answer carrying one of these counts as failed. */
export const FAILURE_TYPES = ['CommitConflict', 'LimitExceeded', 'QuotaExceeded', 'RevisionMismatch', 'ValidationFailed'] as const;

/** A GraphQL request to the gateway with an extension token (or one of several, chosen per request). */
export function gatewayPlan(tokens: string | readonly string[], body: Body): Plan {
  const list = typeof tokens === 'string' ? [tokens] : tokens;
  return {
    path: '/graphql',
    headers: gqlHeaders(list[0]!),
    pick: list.length > 1 ? { header: 'authorization', values: list.map((t) => `Bearer ${t}`) } : undefined,
    body,
    failures: FAILURE_TYPES,
  };
}

// ---------------------------------------------------------------- CPU time of a process

let clockTicks: number | undefined;
function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** User + system CPU seconds a process (all its threads) has used so far; null off Linux. */
export function cpuSeconds(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // After "pid (comm) ": state is field 3, utime field 14, stime field 15.
    return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond();
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------- statistics

/** A growable list of latencies (ms) with a hard cap, so a long run cannot eat memory. */
export class Samples {
  private data = new Float64Array(4096);
  private n = 0;
  dropped = 0;
  constructor(private readonly cap = 4_000_000) {}

  add(v: number): void {
    if (this.n === this.data.length) {
      if (this.n >= this.cap) {
        this.dropped++;
        return;
      }
      const next = new Float64Array(Math.min(this.cap, this.data.length * 2));
      next.set(this.data);
      this.data = next;
    }
    this.data[this.n++] = v;
  }

  get count(): number {
    return this.n;
  }

  /** Nearest-rank percentiles (ms). */
  percentiles(ps: readonly number[]): Record<string, number | null> {
    const sorted = this.data.slice(0, this.n).sort();
    const out: Record<string, number | null> = {};
    for (const p of ps) {
      out[`p${p}`] = this.n === 0 ? null : round(sorted[Math.min(this.n - 1, Math.max(0, Math.ceil((p / 100) * this.n) - 1))]!, 3);
    }
    return out;
  }
}

export function round(v: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

export function machineInfo(): { cpus: number; loadavg: number[]; node: string } {
  return { cpus: availableParallelism(), loadavg: loadavg().map((l) => round(l, 2)), node: process.version };
}

/** A fixed-width text table. */
export function table(headers: string[], rows: Array<Array<string | number | null>>): string {
  const cells = [headers, ...rows.map((r) => r.map((c) => (c === null ? '–' : String(c))))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(cells[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)].join('\n');
}

/** Runs cleanup once on SIGINT/SIGTERM, then exits; returns a function that unregisters it. */
export function onInterrupt(cleanup: () => Promise<void>): () => void {
  const handler = (signal: NodeJS.Signals) => {
    log(`${signal}: cleaning up`);
    cleanup()
      .catch((e: unknown) => log(`cleanup failed: ${String(e)}`))
      .finally(() => process.exit(130));
  };
  process.once('SIGINT', handler);
  process.once('SIGTERM', handler);
  return () => {
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
  };
}
