/**
 * A private PostgreSQL 15 server for tests that stop and start their database (the shared one on
 * 5432 must never be restarted). Runs as the `postgres` user (the server refuses root), listens on
 * 127.0.0.1 on a free port, trust auth for `root`, everything inside one temporary directory.
 */
import { execFile } from 'node:child_process';
import { chown, mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const BIN = process.env.PG_BIN_DIR ?? '/usr/lib/postgresql/15/bin';

export interface PostgresInstance {
  /** postgres://root@127.0.0.1:<port>/postgres */
  url: string;
  port: number;
  dataDir: string;
  /** `fast` (the default) is an ordinary restart; `immediate` is a crash without a checkpoint. */
  stop(mode?: 'fast' | 'immediate'): Promise<void>;
  start(): Promise<void>;
  restart(): Promise<void>;
  /** Stops the server (if running) and removes its files. */
  destroy(): Promise<void>;
  /** The server's log, for a failing test's message. */
  log(): Promise<string>;
}

/** A port nobody listens on right now (the kernel picks it). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

async function asPostgres(command: string, args: string[], timeoutMs = 60_000): Promise<string> {
  const { stdout } = await run('runuser', ['-u', 'postgres', '--', join(BIN, command), ...args], { timeout: timeoutMs });
  return stdout;
}

async function postgresIds(): Promise<{ uid: number; gid: number }> {
  const [uid, gid] = await Promise.all([run('id', ['-u', 'postgres']), run('id', ['-g', 'postgres'])]);
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

export async function startPostgresInstance(): Promise<PostgresInstance> {
  const root = await mkdtemp(join(tmpdir(), 'ext-storage-pg-'));
  const { uid, gid } = await postgresIds();
  await chown(root, uid, gid);
  const dataDir = join(root, 'data');
  const logFile = join(root, 'server.log');
  const port = await freePort();
  // --no-sync only skips flushing the fresh cluster files; the running server keeps fsync on.
  await asPostgres('initdb', ['-D', dataDir, '-A', 'trust', '-U', 'root', '--no-sync', '-E', 'UTF8', '--locale=C']);
  let running = false;

  const start = async () => {
    const options = `-p ${port} -c listen_addresses=127.0.0.1 -k ${root} -c max_connections=50 -c shared_buffers=16MB`;
    await asPostgres('pg_ctl', ['-D', dataDir, '-l', logFile, '-o', options, '-w', '-t', '60', 'start']);
    running = true;
  };
  const stop = async (mode: 'fast' | 'immediate' = 'fast') => {
    await asPostgres('pg_ctl', ['-D', dataDir, '-m', mode, '-w', '-t', '60', 'stop']);
    running = false;
  };

  await start();
  return {
    url: `postgres://root@127.0.0.1:${port}/postgres`,
    port,
    dataDir,
    stop,
    start,
    async restart() {
      await stop();
      await start();
    },
    async destroy() {
      if (running) await stop('immediate').catch(() => undefined);
      await rm(root, { recursive: true, force: true });
    },
    log: () => readFile(logFile, 'utf8').catch(() => ''),
  };
}
