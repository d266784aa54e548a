/** npm start: config → database → migrations → server. */
import { ConfigError, loadConfig } from './config.js';
import { openMigratedDatabase, setUpDevMode } from './bootstrap.js';
import { createApp } from './http/server.js';
import { createLogger } from './logger.js';
import { Storage } from './storage/storage.js';
import { startTracing } from './tracing/index.js';

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`configuration error: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  const logger = createLogger(config.logLevel);
  // Before the database and the app, which read it once; nothing of OpenTelemetry loads when unset.
  const tracing = await startTracing(config.tracing, { logger });
  if (config.tracing) logger.info({ endpoint: redactedUrl(config.tracing.endpoint), serviceName: config.tracing.serviceName }, 'tracing on: OpenTelemetry spans exported over OTLP/HTTP');
  const database = await openMigratedDatabase(config);
  logger.info({ backend: database.kind, pgliteDir: database.kind === 'pglite' ? config.pgliteDir : undefined }, 'database ready, migrations applied');

  const dev = config.devMode ? await setUpDevMode(new Storage(database.db, config)) : undefined;
  const app = createApp({ config, database, logger, jwtSecret: config.jwtSecret ?? dev!.secret, graphiqlDemo: dev?.demo });
  const url = await app.listen();
  logger.info({ url, devMode: config.devMode, node: process.version }, 'listening');
  if (dev) {
    process.stdout.write(
      [
        '',
        `  Extension storage gateway (dev mode: no STORAGE_JWT_SECRET, tokens below last 12 hours)`,
        `  GraphiQL:        ${url}/graphql   (admin token pre-filled)`,
        `  Demo install:    ${dev.demo.installId}`,
        `  Admin token:     ${dev.adminToken}`,
        `  Extension token: ${dev.extensionToken}`,
        '',
        `  curl -s ${url}/graphql -H 'content-type: application/json' \\`,
        `    -H 'authorization: Bearer ${dev.extensionToken}' \\`,
        `    -d '{"query":"{ install { id usage { keys bytes } } }"}'`,
        '',
      ].join('\n') + '\n',
    );
  }

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down: draining in-flight requests');
    app
      .close(10_000)
      // Flushes the spans still buffered (the batch processor sends every few seconds).
      .then(() => tracing?.shutdown())
      .then(() => {
        logger.info('stopped');
        process.exit(0);
      })
      .catch((error: unknown) => {
        logger.error({ err: error }, 'error while stopping');
        process.exit(1);
      });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

/** A URL for the log, without credentials it may carry. */
function redactedUrl(raw: string): string {
  const url = new URL(raw);
  if (url.username || url.password) url.username = url.password = '';
  return url.toString();
}

main().catch((error: unknown) => {
  process.stderr.write(`failed to start: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
