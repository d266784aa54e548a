/** npm run migrate [up|down]: for operators who migrate separately from starting the server. */
import { loadConfig } from '../config.js';
import { openDatabase } from '../db/database.js';
import { migrateDown, migrateToLatest } from '../db/migrate.js';

const direction = process.argv[2] ?? 'up';
if (direction !== 'up' && direction !== 'down') {
  process.stderr.write('usage: npm run migrate -- [up|down]\n  up    apply every pending migration (default)\n  down  undo the latest migration\n');
  process.exit(2);
}
const database = await openDatabase(loadConfig());
try {
  const steps = direction === 'up' ? await database.withSession(migrateToLatest) : await database.withSession(migrateDown);
  process.stdout.write(steps.length > 0 ? steps.map((s) => `${s}\n`).join('') : 'nothing to do\n');
} catch (error) {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
} finally {
  await database.close();
}
