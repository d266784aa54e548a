/**
 * The project runs on its own pinned Node (the `node` devDependency, Node 22 LTS), whatever Node
 * the machine has: npm scripts put node_modules/.bin first on PATH, so `npm start`, `npm test` and
 * the vitest workers (process.execPath) all run on it. And `npm start` serves the compiled build
 * (dist/): this file compiles the server with the build's own tsconfig into a scratch directory
 * and starts it as `npm start` does with no environment (dev mode), on this file's backend.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backend, createPostgresDatabase } from '../support/db.js';
import { freePort } from '../support/pg-instance.js';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { devDependencies: Record<string, string>; engines: { node: string } };
const pinned = `v${pkg.devDependencies.node}`;

describe('the Node the project runs on', () => {
  it('is the pinned Node 22 in the test process (and so in every vitest worker)', () => {
    expect(pkg.devDependencies.node).toMatch(/^22\.\d+\.\d+$/);
    expect(process.version).toBe(pinned);
    expect(process.versions.node.split('.')[0]).toBe('22');
  });

  it('is the one npm scripts run (`npm start`, `npm test`), whatever Node runs npm itself', () => {
    const result = spawnSync('npm', ['exec', '--', 'node', '--version'], { cwd: REPO, encoding: 'utf8' });
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout.trim()).toBe(pinned);
  });
});

describe('the compiled server (what `npm start` runs)', () => {
  const outDir = join(REPO, '.data', 'test-builds', randomBytes(6).toString('hex'));
  let child: ChildProcess | undefined;
  let exited: Promise<unknown> | undefined;
  let output = '';
  let url = '';
  let dropDatabase: (() => Promise<void>) | undefined;

  beforeAll(async () => {
    // The build's tsconfig, into a directory of this run (two backends may build at once);
    // type checking is `npm run typecheck`'s job, emitting is what is tested here.
    const tsc = spawnSync(
      process.execPath,
      [join(REPO, 'node_modules/typescript/bin/tsc'), '-p', join(REPO, 'tsconfig.build.json'), '--noCheck', '--outDir', outDir, '--tsBuildInfoFile', join(outDir, '.tsbuildinfo')],
      { cwd: REPO, encoding: 'utf8' },
    );
    if (tsc.status !== 0) throw new Error(`build failed:\n${tsc.stdout}${tsc.stderr}`);

    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(process.env)) {
      if (v !== undefined && !k.startsWith('STORAGE_') && !['DATABASE_URL', 'PGLITE_DIR', 'NODE_OPTIONS', 'NODE_ENV', 'LOG_LEVEL', 'RUNNER_AUTH_TOKENS'].includes(k)) env[k] = v;
    }
    if (backend === 'postgres') {
      const database = await createPostgresDatabase();
      dropDatabase = database.drop;
      env.DATABASE_URL = database.url;
    } else {
      env.PGLITE_DIR = 'memory://';
    }
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    // No secret, no NODE_ENV: dev mode, as `npm start` on a new machine.
    child = spawn(process.execPath, [join(outDir, 'src/main.js')], { cwd: REPO, env: { ...env, PORT: String(port), HOST: '127.0.0.1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    exited = new Promise((resolve) => child!.once('exit', resolve));
    const deadline = Date.now() + 120_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`compiled server exited during start:\n${output}`);
      if (Date.now() > deadline) throw new Error(`compiled server not ready within 120 s:\n${output}`);
      const res = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(2000) }).catch(() => null);
      if (res?.status === 200) break;
      await new Promise((r) => setTimeout(r, 100));
    }
  }, 300_000);

  afterAll(async () => {
    if (child && child.exitCode === null) {
      child.kill('SIGTERM');
      await exited;
    }
    await dropDatabase?.();
    rmSync(outDir, { recursive: true, force: true });
  });

  it('says in its start-up log line which Node runs it (not on /healthz, which anyone reaching the port may read)', async () => {
    // Log lines go out in blocks, at the latest 200 ms after they were logged (src/logger.ts).
    const listeningLine = () =>
      output
        .split('\n')
        .filter((line) => line.startsWith('{') && line.endsWith('}'))
        .map((line) => JSON.parse(line) as { msg?: string; node?: string })
        .find((line) => line.msg === 'listening');
    await expect.poll(listeningLine, { timeout: 5_000 }).toBeDefined();
    const listening = listeningLine();
    expect(listening?.node).toBe(pinned);
    const health = await fetch(`${url}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok' });
  });

  it('serves GraphQL with the dev-mode token it printed, and GraphiQL offline', async () => {
    const token = /Extension token: (\S+)/.exec(output)?.[1];
    expect(token).toBeTruthy();
    const res = await fetch(`${url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ query: '{ install { id usage { keys } } }' }),
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ data: { install: { id: expect.any(String), usage: { keys: expect.any(Number) } } } });
    const page = await fetch(`${url}/graphql`, { headers: { accept: 'text/html' } });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('graphiql');
  });

  it('stops cleanly on SIGTERM', async () => {
    child!.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(output).toContain('"msg":"stopped"');
  });
});
