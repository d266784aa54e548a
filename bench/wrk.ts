/**
 * wrk, the load generator of npm run bench: a C program (Debian package `wrk`) that takes little
 * CPU, pinned to the CPUs the servers do not use. Every request is built and every answer checked
 * by bench/wrk/bench.lua, from a plan this module writes as a Lua file per run (into a temporary
 * directory, removed at exit).
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const SCRIPT = fileURLToPath(new URL('./wrk/bench.lua', import.meta.url));

/** A part of a request body that wrk fills per request (bench/wrk/bench.lua documents each kind). */
export type Slot =
  | { kind: 'random'; items: string[] }
  | { kind: 'cycle'; items: string[] }
  | { kind: 'window'; items: string[]; size: number }
  | { kind: 'unique'; prefix: string }
  | { kind: 'bulk'; prefix: string; size: number; windows: number; values: string[]; metadata: string }
  | { kind: 'commit'; prefix: string; size: number; windows: number; values: string[]; metadata: string; namespaces: string[] };

/** A JSON body: text pieces and slot numbers (1-based into `slots`). */
export interface Body {
  pieces: Array<string | number>;
  slots: Slot[];
}

/** What wrk sends: POST `path` with `headers` (plus `pick`, chosen per request) and `body`. */
export interface Plan {
  path: string;
  headers: Record<string, string>;
  pick?: { header: string; values: string[] };
  body: Body;
  /** __typename values that make an answer count as failed (besides non-2xx and GraphQL errors). */
  failures: readonly string[];
}

export interface WrkResult {
  /** Answers received (wrk's completed requests). */
  requests: number;
  seconds: number;
  p50: number;
  p95: number;
  p99: number;
  /** Failed answers by kind (http_<status>, graphql_<code>, a failure __typename) and socket errors (socket_<kind>). */
  failures: Record<string, number>;
  /** The first failed answer (kind and up to 300 bytes of its body), when any. */
  sample: string | null;
  /** CPU seconds wrk itself used (all its threads). */
  cpuSeconds: number;
}

/** Each key or value as its JSON text, for the items of a slot. */
export const jsonTexts = (values: readonly unknown[]): string[] => values.map((v) => JSON.stringify(v));

/**
 * A JSON body with slots: `build` returns the body, calling `slot` for each place wrk fills per
 * request (the slot's text replaces the whole JSON value there).
 */
export function jsonBody(build: (slot: (s: Slot) => string) => unknown): Body {
  const slots: Slot[] = [];
  const text = JSON.stringify(
    build((s) => {
      slots.push(s);
      return `@@slot${slots.length}@@`;
    }),
  );
  const pieces: Array<string | number> = [];
  let last = 0;
  for (const m of text.matchAll(/"@@slot(\d+)@@"/g)) {
    if (m.index > last) pieces.push(text.slice(last, m.index));
    pieces.push(Number(m[1]));
    last = m.index + m[0].length;
  }
  if (last < text.length) pieces.push(text.slice(last));
  if (pieces.filter((p) => typeof p === 'number').length !== slots.length) throw new Error('jsonBody: every slot must appear once in the body');
  return { pieces, slots };
}

/** Throws a clear error when wrk is not installed. */
export function requireWrk(): void {
  const probe = spawnSync('wrk', ['--version'], { stdio: 'ignore' });
  if ((probe.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') {
    throw new Error('wrk is not installed: npm run bench uses it as its load generator. Install it with `sudo apt-get install wrk` (Debian/Ubuntu; Homebrew: `brew install wrk`).');
  }
}

// ---------------------------------------------------------------- the plan as Lua

function luaString(s: string): string {
  let out = '"';
  for (const byte of Buffer.from(s, 'utf8')) {
    // Printable ASCII as is (but " and \), every other byte as a 3-digit decimal escape.
    out += byte >= 32 && byte < 127 && byte !== 0x22 && byte !== 0x5c ? String.fromCharCode(byte) : `\\${String(byte).padStart(3, '0')}`;
  }
  return out + '"';
}

function lua(value: unknown): string {
  if (typeof value === 'string') return luaString(value);
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  if (typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) return `{${value.map(lua).join(',')}}`;
  if (value !== null && typeof value === 'object') {
    const fields = Object.entries(value).filter(([, v]) => v !== undefined);
    return `{${fields.map(([k, v]) => `[${luaString(k)}]=${lua(v)}`).join(',')}}`;
  }
  throw new Error(`wrk plan: cannot write ${String(value)} as Lua`);
}

let planDir: string | undefined;
let planFiles = 0;

function writePlan(plan: Plan, limitPerThread: number | undefined): string {
  if (!planDir) {
    const dir = mkdtempSync(join(tmpdir(), 'bench-wrk-'));
    planDir = dir;
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  }
  const file = join(planDir, `plan-${++planFiles}.lua`);
  const table = {
    path: plan.path,
    headers: plan.headers,
    pick: plan.pick,
    body: plan.body.pieces,
    slots: plan.body.slots,
    failures: plan.failures,
    limit: limitPerThread,
    seed: randomInt(1, 2 ** 31),
  };
  writeFileSync(file, `return ${lua(table)}\n`);
  return file;
}

// ---------------------------------------------------------------- running wrk

export interface WrkOptions {
  connections: number;
  seconds: number;
  /** CPUs to pin wrk to (taskset list, e.g. "0" or "0-2"), or null: not pinned, one thread. */
  cpus: { list: string; count: number } | null;
  /** Stop once this many answers arrived (the run then lasts less than `seconds`). */
  maxAnswers?: number;
}

/** Runs wrk with a plan; resolves with what bench/wrk/bench.lua's done() reported. */
export async function runWrk(url: string, plan: Plan, opts: WrkOptions): Promise<WrkResult> {
  const threads = Math.max(1, Math.min(opts.connections, opts.cpus?.count ?? 1));
  const file = writePlan(plan, opts.maxAnswers === undefined ? undefined : Math.ceil(opts.maxAnswers / threads));
  const args = ['-t', String(threads), '-c', String(opts.connections), '-d', `${Math.ceil(opts.seconds)}s`, '--timeout', '30s', '-s', SCRIPT, url, '--', file];
  const child = opts.cpus ? spawn('taskset', ['-c', opts.cpus.list, 'wrk', ...args]) : spawn('wrk', args);
  let stdout = '';
  let stderr = '';
  let interrupted = false;
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString('utf8');
    // A thread reached maxAnswers: interrupt wrk, which then reports the time it really ran.
    if (!interrupted && stdout.includes('@@wrk-limit')) {
      interrupted = true;
      child.kill('SIGINT');
    }
  });
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const deadline = setTimeout(() => child.kill('SIGKILL'), (opts.seconds + 60) * 1000);
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', resolve);
  }).finally(() => {
    clearTimeout(deadline);
    rmSync(file, { force: true });
  });
  const line = /^@@wrk-result (.*)$/m.exec(stdout)?.[1];
  if (code !== 0 || !line) throw new Error(`wrk exited with ${code} and no result: ${(stderr + stdout).slice(-2000)}`);
  const r = JSON.parse(line) as {
    requests: number;
    durationUs: number;
    latencyUs: { p50: number; p95: number; p99: number };
    failures: Record<string, number>;
    socketErrors: Record<string, number>;
    sample: string | null;
    cpuSeconds: number;
  };
  const failures = { ...r.failures };
  for (const [kind, n] of Object.entries(r.socketErrors)) failures[`socket_${kind}`] = n;
  return {
    requests: r.requests,
    seconds: r.durationUs / 1e6,
    p50: r.latencyUs.p50 / 1000,
    p95: r.latencyUs.p95 / 1000,
    p99: r.latencyUs.p99 / 1000,
    failures,
    sample: r.sample,
    cpuSeconds: r.cpuSeconds,
  };
}
