/**
 * The examples of docs/callers.md and docs/transactions.md run against a test server, in the order
 * of each page: every ```sh block marked `# example: <name>` with bash (variables from the
 * environment), every ```ts block marked `// example: <name>` type-checked and executed. Each
 * example has its own assertions.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { build } from 'esbuild';
import { parse } from 'graphql';
import { jwtVerify } from 'jose';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StorageClient } from '../../client/index.js';
import { startTestApp, type TestApp } from '../support/app.js';

const root = resolve(import.meta.dirname, '../..');
const DOC = join(root, 'docs/callers.md');
const HOST_ORIGIN = 'https://host.example.com';

interface Example {
  name: string;
  lang: 'sh' | 'ts';
  code: string;
}

function extractExamples(markdown: string): Example[] {
  const examples: Example[] = [];
  for (const [, lang, code] of markdown.matchAll(/^```(sh|ts)\n([\s\S]*?)^```$/gm)) {
    const marker = /^(?:#|\/\/) example: ([a-z0-9-]+)\s*$/.exec(code!.split('\n')[0]!);
    if (marker) examples.push({ name: marker[1]!, lang: lang as 'sh' | 'ts', code: code! });
  }
  return examples;
}

const examples = extractExamples(readFileSync(DOC, 'utf8'));
const TX_DOC = join(root, 'docs/transactions.md');
const txExamples = extractExamples(readFileSync(TX_DOC, 'utf8'));
const run = promisify(execFile);

let t: TestApp;
let env: Record<string, string>;
let installId: string;

beforeAll(async () => {
  t = await startTestApp({ STORAGE_CORS_ORIGINS: HOST_ORIGIN });
  const install = await t.createInstall();
  installId = install.id;
  env = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? tmpdir(),
    URL: t.url,
    TOKEN: await install.token(),
    ADMIN_TOKEN: await t.adminToken(),
    RUNNER_TOKEN: t.runnerToken,
    INSTALL_ID: install.id,
    TENANT_ID: t.tenantId,
    STORAGE_JWT_SECRET: t.secret,
  };
});
afterAll(async () => {
  await t?.close();
});

async function bash(code: string, vars: Record<string, string> = env): Promise<string> {
  // Asynchronous on purpose: the server answering these requests runs in this process.
  const { stdout } = await run('bash', ['-euo', 'pipefail', '-c', code], { env: vars, cwd: root, timeout: 60_000, maxBuffer: 1 << 20 });
  return stdout;
}

function json(stdout: string): any {
  const parsed = JSON.parse(stdout);
  expect(parsed.errors, JSON.stringify(parsed.errors)).toBeUndefined();
  return parsed;
}

async function verify(token: string) {
  return (await jwtVerify(token, new TextEncoder().encode(t.secret), { audience: 'ext-storage' })).payload;
}

/** Type-checks a TypeScript example as a user of the client would compile it (strict, NodeNext). */
function typeCheck(name: string, code: string): string[] {
  // Under node_modules, so that the example's package imports (Apollo, urql) resolve as in an app.
  const dir = mkdtempSync(join(root, 'node_modules', '.doc-example-'));
  try {
    const file = join(dir, `${name}.mts`);
    writeFileSync(file, code.replaceAll("'./client/index.js'", JSON.stringify(join(root, 'client/index.js'))));
    const program = ts.createProgram([file], {
      strict: true,
      noUncheckedIndexedAccess: true,
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      lib: ['lib.es2024.d.ts', 'lib.dom.d.ts'],
      types: [],
      skipLibCheck: true,
      noEmit: true,
    });
    return ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Bundles a TypeScript example (with the client) and imports it. */
async function load(name: string, code: string): Promise<Record<string, unknown>> {
  const bundle = await build({
    stdin: { contents: code, resolveDir: root, sourcefile: `${name}.ts`, loader: 'ts' },
    bundle: true,
    format: 'esm',
    platform: 'browser',
    write: false,
    logLevel: 'silent',
  });
  const dir = mkdtempSync(join(tmpdir(), 'doc-example-'));
  const file = join(dir, `${name}.mjs`);
  writeFileSync(file, bundle.outputFiles[0]!.text);
  try {
    return (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

type Check = (stdout: string, example: Example) => Promise<void> | void;

const checks: Record<string, Check> = {
  'cors-preflight': (out) => {
    expect(out).toMatch(/^HTTP\/1\.1 204/);
    const headers = out.toLowerCase();
    expect(headers).toContain(`access-control-allow-origin: ${HOST_ORIGIN}`);
    expect(headers).toMatch(/access-control-allow-headers: .*authorization/);
    expect(headers).toMatch(/access-control-allow-headers: .*content-type/);
    expect(headers).not.toContain('access-control-allow-credentials');
    expect(headers).not.toContain(': *');
  },

  'sdk-client': async (_, example) => {
    expect(typeCheck(example.name, example.code)).toEqual([]);
    const mod = await load(example.name, example.code);
    const storageFor = mod.storageFor as (url: string, getToken: () => Promise<string>) => StorageClient;
    const saveThemeOnce = mod.saveThemeOnce as (s: StorageClient, mode: 'dark' | 'light') => Promise<string>;
    const countVisit = mod.countVisit as (s: StorageClient) => Promise<number | null>;
    const allKeys = mod.allKeys as (s: StorageClient, ns: string) => Promise<string[]>;
    let tokenRequests = 0;
    const storage = storageFor(t.url, async () => {
      tokenRequests++;
      return env.TOKEN!;
    });
    expect(await saveThemeOnce(storage, 'light')).toBe('saved at revision 1');
    expect(await saveThemeOnce(storage, 'dark')).toBe('already set (revision 1)');
    const visits = await Promise.all(Array.from({ length: 5 }, () => countVisit(storage)));
    expect([...visits].sort()).toEqual([1, 2, 3, 4, 5]);
    expect(await allKeys(storage, 'settings')).toEqual(['theme']);
    expect(tokenRequests).toBeGreaterThan(0);
  },

  'sdk-put': (out) => {
    // The page's client example created settings/theme first; this unconditional put replaces it.
    expect(json(out).data.putRecord).toEqual({ __typename: 'PutRecordSuccess', record: { key: 'theme', value: { mode: 'dark' }, revision: 2 } });
  },

  'sdk-caches': async (_, example) => {
    expect(typeCheck(example.name, example.code)).toEqual([]);
    const mod = await load(example.name, example.code);
    const apollo = (mod.apolloFor as (url: string, token: string) => { mutate(o: { mutation: unknown }): Promise<{ data?: unknown }> })(t.url, env.TOKEN!);
    const urql = (mod.urqlFor as (url: string, token: string) => { mutation(q: string, v: object): { toPromise(): Promise<{ data?: unknown }> } })(t.url, env.TOKEN!);
    // settings/theme is at revision 2 (sdk-client, then sdk-put): a create-only put is a RevisionMismatch
    // whose fields arrive through both caches.
    const mutation = `mutation { putRecord(input: {namespace: "settings", key: "theme", value: 1, ifRevision: 0}) {
      __typename ... on StorageError { code message } ... on RevisionMismatch { currentRevision } } }`;
    const expected = { putRecord: { __typename: 'RevisionMismatch', code: 'REVISION_MISMATCH', message: expect.any(String), currentRevision: 2 } };
    expect((await apollo.mutate({ mutation: parse(mutation) })).data).toEqual(expected);
    expect((await urql.mutation(mutation, {}).toPromise()).data).toEqual(expected);
  },

  'runner-graphql-put': (out) => {
    expect(json(out).data.putRecord).toEqual({ __typename: 'PutRecordSuccess', record: { key: 'job/1', revision: 1 } });
  },

  'runner-graphql-get': (out) => {
    expect(json(out).data.record).toMatchObject({ value: { state: 'queued' }, revision: 1 });
  },

  'runner-rest-put': (out) => {
    const body = json(out);
    expect(Object.keys(body).sort()).toEqual(['createdAt', 'key', 'namespace', 'revision', 'ttlExpiresAt', 'updatedAt']);
    expect(body).toMatchObject({ namespace: 'jobs', key: 'job/2', revision: 1 });
    expect(Date.parse(body.ttlExpiresAt)).toBeGreaterThan(Date.now());
  },

  'runner-rest-get': (out) => {
    expect(json(out)).toMatchObject({ namespace: 'jobs', key: 'job/2', revision: 1, value: { state: 'running' }, metadata: { worker: 'w1' } });
  },

  'runner-rest-conflict': (out) => {
    const [body, status] = out.trim().split('\n');
    expect(status).toBe('409');
    expect(JSON.parse(body!)).toEqual({
      error: expect.any(String),
      code: 'REVISION_MISMATCH',
      details: { namespace: 'jobs', key: 'job/2', expectedRevision: 0, currentRevision: 1 },
    });
  },

  'runner-rest-bulkput': (out) => {
    const body = json(out);
    expect(body.namespace).toBe('jobs');
    expect(body.items.map((i: { key: string; revision: number }) => [i.key, i.revision])).toEqual([
      ['job/3', 1],
      ['job/4', 1],
    ]);
  },

  'runner-rest-list': (out) => {
    const body = json(out);
    expect(body.items.map((i: { key: string }) => i.key)).toEqual(['job/1', 'job/2']);
    for (const item of body.items) {
      expect(item).toHaveProperty('value');
      expect(item).not.toHaveProperty('metadata');
    }
    expect(body.nextCursor).toEqual(expect.any(String));
    env.CURSOR = body.nextCursor;
  },

  'runner-rest-list-next': (out) => {
    const body = json(out);
    expect(body.items.map((i: { key: string }) => i.key)).toEqual(['job/3', 'job/4']);
    expect(body.nextCursor).toBeNull();
  },

  'runner-rest-delete': (out) => {
    expect(json(out)).toEqual({ success: true });
  },

  'runner-rest-changes': (out) => {
    const body = json(out);
    expect(body.items.map((c: Record<string, unknown>) => [c.operation, c.namespace, c.key, c.revision, c.actor])).toEqual([
      ['put', 'jobs', 'job/4', 1, 'runner'],
      ['delete', 'jobs', 'job/4', 1, 'runner'],
    ]);
    expect(body.nextCursor).toBe(body.items[1].cursor);
  },

  'admin-token': async (out) => {
    const token = out.trim();
    expect(await verify(token)).toMatchObject({ role: 'admin', tid: t.tenantId, sub: 'ops-alice' });
    const res = await t.gql(`query($id: ID!) { install(id: $id) { id } }`, { id: installId }, { token });
    expect(res.body.data.install.id).toBe(installId);
  },

  'extension-token': async (out) => {
    const token = out.trim();
    expect(await verify(token)).toMatchObject({ role: 'extension', tid: t.tenantId, iid: installId, scope: 'storage:read' });
    const read = await t.gql(`{ record(namespace: "jobs", key: "job/2") { revision } }`, {}, { token });
    expect(read.body.data.record.revision).toBe(1);
    const write = await t.gql(`mutation { putRecord(input: {namespace: "jobs", key: "x", value: 1}) { __typename } }`, {}, { token });
    expect(write.body.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
  },

  'admin-upsert-install': (out) => {
    expect(json(out).data.upsertInstall).toEqual({ id: installId, enabled: true, capabilities: { read: true, write: true, namespaces: null } });
  },

  'admin-usage': (out) => {
    const install = json(out).data.install;
    // settings/theme, stats/visits, jobs/job/1..3 (job/4 was deleted)
    expect(install.usage).toMatchObject({ namespaces: 3, keys: 5 });
    expect(install.usage.bytes).toBeGreaterThan(0);
    expect(install.namespaces.map((n: { name: string }) => n.name)).toEqual(['jobs', 'settings', 'stats']);
    expect(install.quota).toEqual({ maxNamespaces: 32, maxKeysPerNamespace: 5120, maxBytes: 268435456 });
  },

  'admin-audit': (out) => {
    const log = json(out).data.install.auditLog;
    expect(log.edges).toHaveLength(5);
    expect(log.pageInfo.hasNextPage).toBe(true);
    expect(log.edges[0].node).toMatchObject({ operation: 'upsertInstall' });
    expect(log.edges.map((e: { node: { actor: string } }) => e.node.actor)).toContain('runner');
  },
};

describe('docs/callers.md examples', () => {
  it('has examples for every caller, each with its own assertions', () => {
    const names = examples.map((e) => e.name);
    expect(new Set(names).size).toBe(names.length);
    expect(names.sort()).toEqual(Object.keys(checks).sort());
    expect(names.some((n) => n.startsWith('sdk-'))).toBe(true);
    expect(names.some((n) => n.startsWith('runner-graphql-'))).toBe(true);
    expect(names.some((n) => n.startsWith('runner-rest-'))).toBe(true);
    expect(names.some((n) => n.startsWith('admin-'))).toBe(true);
  });

  for (const example of examples) {
    it(`example "${example.name}" runs and answers as documented`, async () => {
      const check = checks[example.name];
      if (!check) return expect.fail(`no assertions for example "${example.name}"`);
      const stdout = example.lang === 'sh' ? await bash(example.code) : '';
      await check(stdout, example);
    });
  }
});

// ---------------------------------------------------------------- docs/transactions.md

describe('docs/transactions.md examples', () => {
  // An install of its own: these examples leave the callers' page's usage and audit counts alone.
  let storage: StorageClient;
  let txEnv: Record<string, string>;
  beforeAll(async () => {
    const install = await t.createInstall();
    const token = await install.token();
    txEnv = { ...env, TOKEN: token, INSTALL_ID: install.id };
    const { createStorageClient } = await import('../../client/index.js');
    storage = createStorageClient({ url: t.url, token });
  });

  /** The value of a record, or null when missing. */
  async function valueOf(namespace: string, key: string): Promise<unknown> {
    const r = await storage.get(namespace, key);
    if (!r.ok) return expect.fail(JSON.stringify(r.error));
    return r.record?.value ?? null;
  }

  const txChecks: Record<string, Check> = {
    'tx-move-item': async (_, example) => {
      expect(typeCheck(example.name, example.code)).toEqual([]);
      const mod = await load(example.name, example.code);
      const moveItem = mod.moveItem as (s: StorageClient, from: string, to: string, item: string, maxAttempts?: number) => Promise<number | string>;
      const items = Array.from({ length: 8 }, (_, i) => `card-${i}`);
      expect((await storage.put('lists', 'todo', { items })).ok).toBe(true);
      // The target list does not exist yet (checked at revision 0); eight moves race on the same two records.
      const results = await Promise.all(items.map((item) => moveItem(storage, 'todo', 'done', item, 50)));
      for (const r of results) expect(typeof r, String(r)).toBe('number');
      // Some moves lost a race and retried: each commit that won was computed from what it replaced.
      expect(Math.max(...(results as number[]))).toBeGreaterThan(1);
      expect(await valueOf('lists', 'todo')).toEqual({ items: [] });
      expect(((await valueOf('lists', 'done')) as { items: string[] }).items.sort()).toEqual(items);
      // Moving something that is not there changes nothing.
      expect(await moveItem(storage, 'todo', 'done', 'card-0')).toBe('"card-0" is not in todo');
    },

    'tx-counter': async (_, example) => {
      expect(typeCheck(example.name, example.code)).toEqual([]);
      const mod = await load(example.name, example.code);
      const countDownload = mod.countDownload as (s: StorageClient, file: string) => Promise<number | null>;
      const recordPurchase = mod.recordPurchase as (s: StorageClient, orderId: string, amount: number) => Promise<boolean>;
      expect(await countDownload(storage, 'report.pdf')).toBe(1);
      // 20 concurrent writers, each incrementing by 1: exactly +20, every intermediate count seen once.
      const counts = await Promise.all(Array.from({ length: 20 }, () => countDownload(storage, 'report.pdf')));
      expect([...counts].sort((a, b) => a! - b!)).toEqual(Array.from({ length: 20 }, (_, i) => i + 2));
      const record = await storage.get('downloads', 'report.pdf');
      expect(record.ok && record.record).toMatchObject({ value: 21, revision: 21 });
      // A purchase and its totals: both or neither; the same order twice is refused whole.
      expect(await recordPurchase(storage, 'o-1', 19.99)).toBe(true);
      expect(await recordPurchase(storage, 'o-2', 0.01)).toBe(true);
      expect(await recordPurchase(storage, 'o-1', 19.99)).toBe(false);
      expect(await valueOf('totals', 'revenue')).toBe(20);
      expect(await valueOf('totals', 'orders')).toBe(2);
    },

    'tx-graphql': async (out, example) => {
      const first = json(out).data.commit;
      expect(first).toEqual({
        __typename: 'CommitSuccess',
        committed: true,
        records: [{ key: 'todo', value: { cards: ['write docs'] }, revision: 1 }, null, { key: 'cardCount', value: 1, revision: 1 }],
      });
      // Sent again: the check fails and nothing is written.
      const second = json(await bash(example.code, txEnv)).data.commit;
      expect(second).toEqual({
        __typename: 'CommitConflict',
        code: 'REVISION_MISMATCH',
        message: expect.any(String),
        conflicts: [{ index: 0, key: 'todo', expectedRevision: 0, currentRevision: 1 }],
      });
      expect(await valueOf('boards', 'cardCount')).toBe(1);
    },
  };

  it('has examples, each with its own assertions', () => {
    const names = txExamples.map((e) => e.name);
    expect(new Set(names).size).toBe(names.length);
    expect(names.sort()).toEqual(Object.keys(txChecks).sort());
  });

  for (const example of txExamples) {
    it(`example "${example.name}" runs and answers as documented`, async () => {
      const check = txChecks[example.name];
      if (!check) return expect.fail(`no assertions for example "${example.name}"`);
      const stdout = example.lang === 'sh' ? await bash(example.code, txEnv) : '';
      await check(stdout, example);
    });
  }
});
