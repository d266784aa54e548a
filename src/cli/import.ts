/**
 * npm run import -- --url http://gateway:4000 --token ADMIN_TOKEN --install <uuid> [--mode replace] < install.ndjson
 * Streams stdin to the gateway's import (all or nothing), with progress on stderr (and an ETA when
 * stdin is a file: its size is the total). Exit 1 when the import is refused (nothing changed).
 */
import { fstatSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { endpoint, Progress, runCommand } from './progress.js';

const usage = 'usage: npm run import -- --url http://... --token ADMIN_TOKEN --install <uuid> [--mode merge|replace] < file.ndjson';

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: { url: { type: 'string' }, token: { type: 'string' }, install: { type: 'string' }, mode: { type: 'string', default: 'merge' } },
  });
  const token = values.token ?? process.env.STORAGE_ADMIN_TOKEN;
  if (!token) throw new Error('--token (or STORAGE_ADMIN_TOKEN) is required');
  if (values.mode !== 'merge' && values.mode !== 'replace') throw new Error('--mode must be merge or replace');
  const stat = fstatSync(0);
  const progress = new Progress(`import (${values.mode})`, stat.isFile() ? stat.size : null);
  const stdin = process.stdin;
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      const { value, done } = await iterator.next();
      if (done) {
        controller.close();
        return;
      }
      const chunk = value as Buffer;
      progress.bytes += chunk.length;
      for (let i = chunk.indexOf('"type":"record"'); i >= 0; i = chunk.indexOf('"type":"record"', i + 1)) progress.records++;
      progress.update();
      controller.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length));
    },
  });
  const iterator = stdin[Symbol.asyncIterator]();
  const res = await fetch(`${endpoint(values.url, values.install, 'import')}?mode=${values.mode}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-ndjson' },
    body,
    duplex: 'half',
  } as RequestInit);
  const text = await res.text();
  if (res.status !== 200) {
    progress.done(`import REFUSED (nothing changed): HTTP ${res.status} ${text}`);
    return 1;
  }
  progress.done(`import done: ${text}`);
  process.stdout.write(`${text}\n`);
  return 0;
}

runCommand(main, usage);
