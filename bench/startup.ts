/**
 * Start-up time of the gateway: from spawning the process to the first `/readyz` 200, on embedded
 * PGlite in memory (`PGLITE_DIR=memory://`) and on a fresh PostgreSQL database per run (created on
 * the local server, or BENCH_ADMIN_DATABASE_URL / TEST_DATABASE_URL, and dropped afterwards), so
 * every run includes all migrations.
 *
 *   npm run bench:startup -- [--runs 3] [--mode compiled,tsx] [--target pglite,postgres] [--node <path>]
 *
 * Modes: `compiled` runs `node dist/src/main.js` (what `npm start` runs; build first with
 * `npm run build`), `tsx` runs `node --import tsx src/main.ts` (what `npm start` ran before the
 * build existed). `--node` picks the Node binary (default: the one running this script).
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { benchDatabase, freePort, log, repoRoot, sleep } from './support.js';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    mode: { type: 'string', default: 'compiled,tsx' },
    target: { type: 'string', default: 'pglite,postgres' },
    node: { type: 'string', default: process.execPath },
  },
});
const runs = Number(values.runs);
const modes = values.mode.split(',');
const targets = values.target.split(',');
const node = values.node;

const entry: Record<string, string[]> = {
  compiled: ['dist/src/main.js'],
  tsx: ['--import', 'tsx', 'src/main.ts'],
};
for (const mode of modes) if (!entry[mode]) throw new Error(`unknown mode ${mode} (compiled, tsx)`);
if (modes.includes('compiled') && !existsSync(`${repoRoot}/dist/src/main.js`)) throw new Error('no dist/src/main.js: run `npm run build` first');

/** Milliseconds from spawn to the first /readyz 200, then stops the child (SIGTERM) and waits for it. */
async function once(mode: string, env: Record<string, string>): Promise<number> {
  const port = await freePort();
  const started = performance.now();
  const child = spawn(node, entry[mode]!, {
    cwd: repoRoot,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', LOG_LEVEL: 'info', STORAGE_JWT_SECRET: 'startup-bench-secret-0123456789abcdef', ...env, PORT: String(port), HOST: '127.0.0.1' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let tail = '';
  child.stderr!.on('data', (chunk: Buffer) => (tail = (tail + chunk.toString('utf8')).slice(-4000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    for (;;) {
      if (child.exitCode !== null) throw new Error(`gateway exited during start (${child.exitCode}): ${tail}`);
      try {
        const res = await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(1000) });
        if (res.status === 200) return performance.now() - started;
      } catch {
        // not listening yet
      }
      if (performance.now() - started > 120_000) throw new Error(`not ready within 120 s: ${tail}`);
      await sleep(10);
    }
  } finally {
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
  }
}

const versionOf = (await new Promise<string>((resolve) => {
  const c = spawn(node, ['--version']);
  let out = '';
  c.stdout.on('data', (d: Buffer) => (out += d.toString()));
  c.on('exit', () => resolve(out.trim()));
}));
log(`node ${versionOf} (${node}), ${runs} runs per mode and target`);

const rows: string[] = [];
for (const target of targets) {
  for (const mode of modes) {
    const times: number[] = [];
    for (let i = 0; i < runs; i++) {
      if (target === 'pglite') {
        times.push(await once(mode, { PGLITE_DIR: 'memory://' }));
      } else if (target === 'postgres') {
        const database = await benchDatabase('startup_bench');
        try {
          times.push(await once(mode, { DATABASE_URL: database.url }));
        } finally {
          await database.drop();
        }
      } else {
        throw new Error(`unknown target ${target} (pglite, postgres)`);
      }
      log(`${target} ${mode} run ${i + 1}: ${Math.round(times.at(-1)!)} ms`);
    }
    const sorted = [...times].sort((a, b) => a - b);
    rows.push(`| ${versionOf} | ${target} | ${mode} | ${times.map((t) => Math.round(t)).join(', ')} | ${Math.round(sorted[Math.floor(sorted.length / 2)]!)} |`);
  }
}
process.stdout.write(['| node | target | mode | runs (ms) | median (ms) |', '|---|---|---|---|---|', ...rows].join('\n') + '\n');
