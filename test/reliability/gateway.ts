/**
 * A real gateway in a child process (`node --import tsx src/main.ts`, so the pid is the server's),
 * plus a small HTTP client and a write-load recorder shared by the reliability tests.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { mintToken } from '../../src/auth/credentials.js';
import { freePort } from '../support/pg-instance.js';

const REPO = fileURLToPath(new URL('../..', import.meta.url));

export interface Gateway {
  url: string;
  port: number;
  child: ChildProcess;
  secret: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Everything the child wrote (logs), for failure messages. */
  output(): string;
  /** Registers an install through GraphQL `upsertInstall` and returns an extension token for it. */
  createInstall(): Promise<{ installId: string; tenantId: string; token: string }>;
  /** An extension token (read and write) for an install, signed with this gateway's secret. */
  extensionToken(tenantId: string, installId: string): Promise<string>;
  stop(): Promise<void>;
}

export async function startGateway(env: Record<string, string>, readyTimeoutMs = 60_000): Promise<Gateway> {
  const port = await freePort();
  const secret = randomBytes(32).toString('hex');
  const childEnv: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && !k.startsWith('STORAGE_') && k !== 'DATABASE_URL' && k !== 'PGLITE_DIR' && k !== 'NODE_OPTIONS') childEnv[k] = v;
  }
  Object.assign(childEnv, {
    NODE_ENV: 'test',
    LOG_LEVEL: 'warn',
    PORT: String(port),
    HOST: '127.0.0.1',
    STORAGE_JWT_SECRET: secret,
    STORAGE_RATE_LIMIT_PER_SECOND: '0',
    STORAGE_GRAPHIQL: 'false',
    ...env,
  });
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], { cwd: REPO, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const append = (chunk: Buffer) => {
    output += chunk.toString('utf8');
    if (output.length > 200_000) output = output.slice(-100_000);
  };
  child.stdout!.on('data', append);
  child.stderr!.on('data', append);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  let gone = false;
  void exited.then(() => (gone = true));
  const url = `http://127.0.0.1:${port}`;
  const extensionToken = (tenantId: string, installId: string) =>
    mintToken(secret, { sub: 'reliability-extension', tid: tenantId, role: 'extension', iid: installId, scope: 'storage:read storage:write' });

  const deadline = Date.now() + readyTimeoutMs;
  for (;;) {
    if (gone) throw new Error(`gateway exited before it was ready:\n${output}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`gateway not ready within ${readyTimeoutMs} ms:\n${output}`);
    }
    const res = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(2000) }).catch(() => null);
    if (res?.status === 200) break;
    await sleep(100);
  }

  return {
    url,
    port,
    child,
    secret,
    exited,
    output: () => output,
    async createInstall() {
      const tenantId = randomUUID();
      const installId = randomUUID();
      const admin = await mintToken(secret, { sub: 'reliability-admin', tid: tenantId, role: 'admin' });
      const res = await call(url, {
        token: admin,
        query: `mutation Up($input: UpsertInstallInput!) { upsertInstall(input: $input) { id } }`,
        variables: { input: { id: installId, extensionId: 'reliability', enabled: true, canRead: true, canWrite: true } },
      });
      if (res.status !== 200 || (res.body as any)?.data?.upsertInstall?.id !== installId) {
        throw new Error(`upsertInstall failed: ${res.status} ${res.text}`);
      }
      return { installId, tenantId, token: await extensionToken(tenantId, installId) };
    },
    extensionToken,
    async stop() {
      if (gone) return;
      child.kill('SIGKILL');
      await exited;
    },
  };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export interface CallResult {
  status: number;
  text: string;
  body: unknown;
  ms: number;
  /** Set when no HTTP response came (connection refused or reset, client timeout). */
  networkError?: string;
}

/** One GraphQL POST with a client-side timeout, so a hung request shows up as a failure, not a stuck test. */
export async function call(
  url: string,
  opts: { token: string; query: string; variables?: Record<string, unknown>; requestId?: string; timeoutMs?: number },
): Promise<CallResult> {
  const started = performance.now();
  const headers: Record<string, string> = { 'content-type': 'application/json', authorization: `Bearer ${opts.token}` };
  if (opts.requestId) headers['x-request-id'] = opts.requestId;
  try {
    const res = await fetch(`${url}/graphql`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ query: opts.query, variables: opts.variables }),
      signal: AbortSignal.timeout(opts.timeoutMs ?? 15_000),
    });
    const text = await res.text();
    let body: unknown = null;
    try {
      body = JSON.parse(text);
    } catch {
      body = null;
    }
    return { status: res.status, text, body, ms: performance.now() - started };
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause;
    const name = (error as Error).name;
    return { status: 0, text: '', body: null, ms: performance.now() - started, networkError: cause?.code ?? name ?? String(error) };
  }
}

export const PUT = `mutation Put($input: PutRecordInput!) {
  putRecord(input: $input) {
    __typename
    ... on PutRecordSuccess { record { key revision value } }
    ... on RevisionMismatch { currentRevision }
  }
}`;

export const UNAVAILABLE_MESSAGE = 'storage is temporarily unavailable; retry shortly';

/** Words that must never reach a caller: SQL, drivers, connection strings, stack frames. */
const LEAKS = [
  /postgres(ql)?:\/\//i,
  /\b(select|insert|update|delete)\b.+\b(from|into|set)\b/i,
  /ext_storage_/i,
  /ECONN|EPIPE|ETIMEDOUT/,
  /terminat|Connection terminated|shutting down|starting up|timeout exceeded|canceling statement/i,
  /\bat .+\.(ts|js):\d+/,
  /node_modules|\/work\//,
  /SQLSTATE|57P0|08006|57014/,
];

export function leaks(text: string): string[] {
  return LEAKS.filter((re) => re.test(text)).map(String);
}

export type Outcome =
  | { kind: 'ack'; revision: number }
  | { kind: 'mismatch'; currentRevision: number | null }
  /** A clean unavailability answer: the write may or may not have committed. */
  | { kind: 'unavailable' }
  /** No HTTP answer at all (the process died or closed the connection): outcome unknown too. */
  | { kind: 'network'; detail: string }
  | { kind: 'unexpected'; detail: string };

/** Classifies a putRecord answer the way a careful client would. */
export function classifyPut(res: CallResult): Outcome {
  if (res.networkError) return { kind: 'network', detail: `${res.networkError} after ${Math.round(res.ms)} ms` };
  const body = res.body as { data?: { putRecord?: any } | null; errors?: Array<{ message: string; extensions?: { code?: string } }> } | null;
  const put = body?.data?.putRecord;
  if (res.status === 200 && put?.__typename === 'PutRecordSuccess') return { kind: 'ack', revision: put.record.revision };
  if (res.status === 200 && put?.__typename === 'RevisionMismatch') return { kind: 'mismatch', currentRevision: put.currentRevision };
  const errors = body?.errors ?? [];
  const clean =
    (res.status === 503 || res.status === 200) &&
    errors.length > 0 &&
    // 503 before execution is UNAVAILABLE (contract); a field error during execution is INTERNAL.
    errors.every((e) => e.extensions?.code === (res.status === 503 ? 'UNAVAILABLE' : 'INTERNAL') && e.message === UNAVAILABLE_MESSAGE) &&
    leaks(res.text).length === 0;
  if (clean) return { kind: 'unavailable' };
  return { kind: 'unexpected', detail: `HTTP ${res.status} after ${Math.round(res.ms)} ms: ${res.text.slice(0, 500)}` };
}

export interface WriteRecord {
  requestId: string;
  key: string;
  value: unknown;
  ifRevision?: number;
  outcome: Outcome;
  ms: number;
  /** performance.now() when the request was sent. */
  at: number;
}

/**
 * A steady write load on one install: `uniqueLoops` loops of unconditional puts, each to a new
 * key, and `counterLoops` loops incrementing one counter key with `ifRevision`. Every request
 * carries its own x-request-id (the audit log records it), and every outcome is kept.
 */
export function startWriteLoad(opts: {
  url: string;
  token: string;
  namespace: string;
  counterKey: string;
  uniqueLoops: number;
  counterLoops: number;
  /** Pause after a failed request, so a dead database is not hammered in a tight loop. */
  pauseAfterFailureMs?: number;
  /** Stop each loop after this many requests (a bound in count besides the time bound). */
  maxRequestsPerLoop?: number;
}) {
  const writes: WriteRecord[] = [];
  let stopping = false;
  const maxRequests = opts.maxRequestsPerLoop ?? 5000;
  const pause = opts.pauseAfterFailureMs ?? 20;

  async function put(key: string, value: unknown, ifRevision?: number): Promise<WriteRecord> {
    const requestId = `rel-${randomUUID()}`;
    const input: Record<string, unknown> = { namespace: opts.namespace, key, value };
    if (ifRevision !== undefined) input.ifRevision = ifRevision;
    const at = performance.now();
    const res = await call(opts.url, { token: opts.token, query: PUT, variables: { input }, requestId });
    const record: WriteRecord = { requestId, key, value, ifRevision, outcome: classifyPut(res), ms: res.ms, at };
    writes.push(record);
    return record;
  }

  const loops: Array<Promise<void>> = [];
  for (let l = 0; l < opts.uniqueLoops; l++) {
    loops.push(
      (async () => {
        for (let i = 0; i < maxRequests && !stopping; i++) {
          const w = await put(`unique/${l}/${i}`, { loop: l, i });
          if (w.outcome.kind !== 'ack') await sleep(pause);
        }
      })(),
    );
  }
  for (let l = 0; l < opts.counterLoops; l++) {
    loops.push(
      (async () => {
        let known = 1;
        for (let i = 0; i < maxRequests && !stopping; i++) {
          const w = await put(opts.counterKey, { loop: l, i }, known);
          if (w.outcome.kind === 'ack') known = w.outcome.revision;
          else if (w.outcome.kind === 'mismatch' && w.outcome.currentRevision !== null) known = w.outcome.currentRevision;
          else await sleep(pause);
        }
      })(),
    );
  }
  return {
    writes,
    /** Stops the loops and waits for the requests in flight. */
    async stop(): Promise<WriteRecord[]> {
      stopping = true;
      await Promise.all(loops);
      return writes;
    },
  };
}

/** Creates the load's counter record at revision 1; returns the request id the audit log keeps. */
export async function createCounter(url: string, token: string, namespace: string, key: string): Promise<string> {
  const requestId = `setup-${randomUUID()}`;
  const res = await call(url, { token, query: PUT, variables: { input: { namespace, key, value: { loop: -1, i: 0 }, ifRevision: 0 } }, requestId });
  const revision = (res.body as any)?.data?.putRecord?.record?.revision;
  if (revision !== 1) throw new Error(`creating the counter failed: ${res.status} ${res.text}`);
  return requestId;
}

/** Waits (at most `timeoutMs`) until the load has `count` acknowledged writes; returns how many it has. */
export async function waitForAcks(writes: WriteRecord[], count: number, timeoutMs = 20_000): Promise<number> {
  const acks = () => writes.filter((w) => w.outcome.kind === 'ack').length;
  const deadline = Date.now() + timeoutMs;
  while (acks() < count && Date.now() < deadline) await sleep(50);
  return acks();
}
