/**
 * npm run sweep [-- --batch 500]: removes every install's expired records, in bounded batches
 * per install, off the request path (the writes of an idle install never sweep them). Each batch
 * is one call of the write function: counters, ttlExpire audit events and EXPIRE changes move
 * with the records. Run it from cron; it stops when none is left.
 */
import { parseArgs } from 'node:util';
import { loadConfig } from '../config.js';
import { openDatabase } from '../db/database.js';
import { sendFeedWakeups } from '../storage/feed-notifier.js';
import { Storage } from '../storage/storage.js';

const { values } = parseArgs({ options: { batch: { type: 'string', default: '500' } } });
const batch = Number(values.batch);
if (!Number.isInteger(batch) || batch < 1 || batch > 10_000) {
  process.stderr.write('usage: npm run sweep -- [--batch 1..10000]\n');
  process.exit(2);
}
const config = loadConfig();
const database = await openDatabase(config);
try {
  // Subscribers of a swept install hear of its EXPIRE changes at once (gateways LISTEN; PostgreSQL only).
  const swept = new Set<string>();
  const storage = new Storage(database.db, config, { onChanged: (tenantId, installId) => swept.add(`${tenantId}/${installId}`) });
  const wake = async () => {
    const payloads = [...swept];
    swept.clear();
    if (database.kind === 'postgres') await sendFeedWakeups(database.db, payloads).catch(() => undefined);
  };
  let last = 0;
  const removed = await storage.sweepExpired(batch, (n, installs) => {
    void wake();
    if (performance.now() - last < 500) return;
    last = performance.now();
    process.stderr.write(`sweep: ${n} expired records removed, ${installs} installs\n`);
  });
  await wake();
  process.stdout.write(`${JSON.stringify({ removed })}\n`);
} catch (error) {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
} finally {
  await database.close();
}
