/**
 * npm run export -- --url http://gateway:4000 --token ADMIN_TOKEN --install <uuid> > install.ndjson
 * Streams the install's export to stdout (progress on stderr); fails (exit 1) when the gateway
 * answers an error or the file ends without its end line.
 */
import { once } from 'node:events';
import { parseArgs } from 'node:util';
import { endpoint, Progress, runCommand } from './progress.js';

const usage = 'usage: npm run export -- --url http://... --token ADMIN_TOKEN --install <uuid> > file.ndjson';

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { url: { type: 'string' }, token: { type: 'string' }, install: { type: 'string' } } });
  const token = values.token ?? process.env.STORAGE_ADMIN_TOKEN;
  if (!token) throw new Error('--token (or STORAGE_ADMIN_TOKEN) is required');
  const res = await fetch(endpoint(values.url, values.install, 'export'), { headers: { authorization: `Bearer ${token}` } });
  if (res.status !== 200 || !res.body) {
    process.stderr.write(`export refused: HTTP ${res.status} ${await res.text()}\n`);
    return 1;
  }
  const progress = new Progress('export', null);
  let tail = '';
  const decoder = new TextDecoder();
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    progress.bytes += chunk.byteLength;
    const text = decoder.decode(chunk, { stream: true });
    for (let i = text.indexOf('"type":"record"'); i >= 0; i = text.indexOf('"type":"record"', i + 1)) progress.records++;
    tail = (tail + text).slice(-4096);
    if (!process.stdout.write(chunk)) await once(process.stdout, 'drain');
    progress.update();
  }
  const last = tail.trimEnd().split('\n').pop() ?? '';
  let end: { type?: string; records?: number; bytes?: number } = {};
  try {
    end = JSON.parse(last);
  } catch {
    // reported below
  }
  if (end.type !== 'end') {
    progress.done('export FAILED: the stream ended without its end line (the file is truncated)');
    return 1;
  }
  progress.records = end.records ?? progress.records;
  progress.done(`export done: ${end.records} records, ${end.bytes} bytes of values and metadata`);
  return 0;
}

runCommand(main, usage);
