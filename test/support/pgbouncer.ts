/**
 * A private PgBouncer (Debian package `pgbouncer`) in transaction pooling mode in front of the
 * test PostgreSQL: 127.0.0.1 on a free port, no unix socket, trust auth for `root`, every
 * database of the server reachable by name, a small server pool so transactions really share
 * server connections. Config in a temporary directory; the log is kept in memory for messages.
 * PgBouncer refuses to run as root: as root it is started with `-u postgres`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freePort } from './pg-instance.js';

export const PGBOUNCER_BIN = process.env.PGBOUNCER_BIN ?? '/usr/sbin/pgbouncer';
export const pgbouncerAvailable = existsSync(PGBOUNCER_BIN);

export interface PgBouncer {
  port: number;
  /** postgres://root@127.0.0.1:<port>/<database>: that database through PgBouncer. */
  url(database: string): string;
  /** Rows of an admin console command (SHOW POOLS, SHOW SERVERS, …). */
  show(what: string): Promise<Array<Record<string, unknown>>>;
  log(): string;
  stop(): Promise<void>;
}

export async function startPgBouncer(server: { host: string; port: number }, settings: { defaultPoolSize: number; maxClientConn: number }): Promise<PgBouncer> {
  const dir = await mkdtemp(join(tmpdir(), 'ext-storage-pgbouncer-'));
  // Readable by the postgres user PgBouncer switches to.
  await chmod(dir, 0o755);
  const port = await freePort();
  const ini = join(dir, 'pgbouncer.ini');
  const users = join(dir, 'users.txt');
  await writeFile(users, '"root" ""\n', { mode: 0o644 });
  await writeFile(
    ini,
    [
      '[databases]',
      `* = host=${server.host} port=${server.port}`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      'unix_socket_dir =',
      'auth_type = trust',
      `auth_file = ${users}`,
      'admin_users = root',
      'pool_mode = transaction',
      `default_pool_size = ${settings.defaultPoolSize}`,
      `max_client_conn = ${settings.maxClientConn}`,
      'logfile =',
      'pidfile =',
      '',
    ].join('\n'),
    { mode: 0o644 },
  );
  const asRoot = process.getuid?.() === 0;
  const child: ChildProcess = spawn(PGBOUNCER_BIN, [...(asRoot ? ['-u', 'postgres'] : []), ini], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  const url = (database: string) => `postgres://root@127.0.0.1:${port}/${database}`;
  const show = async (what: string) => {
    const c = new pg.Client({ connectionString: url('pgbouncer') });
    await c.connect();
    try {
      return (await c.query(`SHOW ${what}`)).rows as Array<Record<string, unknown>>;
    } finally {
      await c.end();
    }
  };
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await exited;
    }
    await rm(dir, { recursive: true, force: true });
  };

  for (let i = 0; ; i++) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`pgbouncer exited with ${child.exitCode}:\n${output}`);
    }
    try {
      await show('VERSION');
      break;
    } catch (error) {
      if (i >= 100) {
        await stop();
        throw new Error(`pgbouncer did not accept connections within 10 s (${(error as Error).message}):\n${output}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return { port, url, show, log: () => output, stop };
}
