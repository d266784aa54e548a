/**
 * The typed client's watch() (client/index.ts) and the example of docs/change-feed-client.md, run
 * against a test server: snapshot then follow converges on the server's state, and watch() resumes
 * from its last cursor after its connection is cut.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createStorageClient, type StorageClient, type WatchedChange } from '../../client/index.js';
import { extensionClient, sleep } from '../records/client.js';
import { startTestApp, type TestApp } from '../support/app.js';

const root = resolve(import.meta.dirname, '../..');
const DOC = join(root, 'docs/change-feed-client.md');

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => {
  await t?.close();
});

function example(name: string): string {
  for (const [, code] of readFileSync(DOC, 'utf8').matchAll(/^```ts\n([\s\S]*?)^```$/gm)) {
    if (code!.startsWith(`// example: ${name}\n`)) return code!;
  }
  throw new Error(`no example ${name}`);
}

function typeCheck(name: string, code: string): string[] {
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

async function load(name: string, code: string): Promise<Record<string, unknown>> {
  const bundle = await build({ stdin: { contents: code, resolveDir: root, sourcefile: `${name}.ts`, loader: 'ts' }, bundle: true, format: 'esm', platform: 'browser', write: false, logLevel: 'silent' });
  const dir = mkdtempSync(join(tmpdir(), 'doc-example-'));
  const file = join(dir, `${name}.mjs`);
  writeFileSync(file, bundle.outputFiles[0]!.text);
  try {
    return (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function until(check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await sleep(50);
  }
}

describe('docs/change-feed-client.md', () => {
  it('example "local-cache": snapshot, then follow, while writers write: the cache equals the server', async () => {
    const code = example('local-cache');
    expect(typeCheck('local-cache', code)).toEqual([]);
    const mod = await load('local-cache', code);
    const syncedCache = mod.syncedCache as (s: StorageClient, ns: string, signal: AbortSignal) => Promise<{ cache: Map<string, unknown>; following: Promise<string> }>;
    const c = await extensionClient(t);
    for (let i = 0; i < 30; i++) await c.put({ namespace: 'todo', key: `k${i}`, value: i });
    const storage = createStorageClient({ url: t.url, token: c.token });
    const stop = new AbortController();
    // Writers keep writing while the snapshot is read and after.
    const writers = Promise.all(
      Array.from({ length: 4 }, async (_, w) => {
        for (let i = 0; i < 15; i++) {
          if (i % 3 === 2) await c.del({ namespace: 'todo', key: `k${w * 5 + i}` });
          else await c.put({ namespace: 'todo', key: `k${w * 5 + i}`, value: { w, i } });
        }
      }),
    );
    const { cache, following } = await syncedCache(storage, 'todo', stop.signal);
    await writers;
    const server = async () => {
      const out = new Map<string, unknown>();
      let after: string | undefined;
      for (;;) {
        const page = await c.list('todo', { first: 100, after });
        for (const e of page.edges) out.set(e.node.key, e.node.value);
        if (!page.pageInfo.hasNextPage) return out;
        after = page.pageInfo.endCursor!;
      }
    };
    const expected = await server();
    await until(() => JSON.stringify([...cache].sort()) === JSON.stringify([...expected].sort()));
    stop.abort();
    expect(await following).toBe('stopped');
  });
});

describe('client watch()', () => {
  it('resumes from its last cursor after its connection is cut, missing nothing', async () => {
    const c = await extensionClient(t);
    const storage = createStorageClient({ url: t.url, token: c.token });
    const stop = new AbortController();
    const seen: WatchedChange[] = [];
    const watching = (async () => {
      for await (const change of storage.watch({ signal: stop.signal, minBackoffMs: 50 })) seen.push(change);
    })();
    await sleep(300);
    await c.put({ namespace: 'n', key: 'a', value: 1 });
    await until(() => seen.length === 1);
    // The network fails: every connection to the gateway is cut.
    t.app.server.closeAllConnections();
    await c.put({ namespace: 'n', key: 'b', value: 2 });
    await c.put({ namespace: 'n', key: 'c', value: 3 });
    await until(() => new Set(seen.map((s) => s.cursor)).size === 3);
    const unique = [...new Map(seen.map((s) => [s.cursor, s.key])).values()];
    expect(unique).toEqual(['a', 'b', 'c']);
    expect(seen.find((s) => s.key === 'b')).toMatchObject({ operation: 'PUT', record: { value: 2 } });
    stop.abort();
    await watching;
  });

  it('a refusal ends the iteration with a WatchError', async () => {
    const c = await extensionClient(t, { namespaces: ['open'] });
    const storage = createStorageClient({ url: t.url, token: c.token });
    await expect(async () => {
      for await (const _ of storage.watch({ namespace: 'secret' })) break;
    }).rejects.toMatchObject({ name: 'WatchError', error: { code: 'FORBIDDEN' } });
  });
});
