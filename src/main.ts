/** npm start: config → database → migrations → server. */
import { ConfigError, loadConfig } from './config.js';
import { openMigratedDatabase, setUpDevMode } from './bootstrap.js';
import { createApp } from './http/server.js';
import { createLogger } from './logger.js';
import { Storage } from './storage/storage.js';

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

main().catch((error: unknown) => {
  process.stderr.write(`failed to start: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
