/** The HTTP server: routes, CORS, body limits, credentials, rate limits, then Yoga or the Runner protocol. */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { EnvelopArmorPlugin } from '@escape.tech/graphql-armor';
import { renderGraphiQL } from '@graphql-yoga/render-graphiql';
import type { DocumentNode, GraphQLError, OperationDefinitionNode, ValidationContext } from 'graphql';
import { createYoga, type Plugin } from 'graphql-yoga';
import { createAuthenticator, type Authenticator } from '../auth/credentials.js';
import type { Config } from '../config.js';
import type { DatabaseHandle } from '../db/database.js';
import { migrationsApplied } from '../db/migrate.js';
import { createGraphQLContext, type GraphQLContext } from '../graphql/context.js';
import { maskError, requestErrorsAnswer400 } from '../graphql/errors.js';
import { useJitQueries } from '../graphql/jit.js';
import { schema } from '../graphql/schema.js';
import type { Logger } from '../logger.js';
import { mapDatabaseError, RateLimitedError, StorageError, UnavailableError } from '../storage/errors.js';
import type { Caller, Principal } from '../storage/principal.js';
import { Storage } from '../storage/storage.js';
import { BodyTooLargeError, isUtf8Body, readBody } from './body.js';
import { graphiqlOptions, type GraphiQLDemo } from './graphiql.js';
import { answerOf, createFastPath, fastPathParams } from './graphql-fast-path.js';
import { createMetrics, type Metrics } from './metrics.js';
import { RateLimiter } from './rate-limit.js';
import { sendGraphQLError, sendJson } from './respond.js';
import { handleRunnerRequest, RUNNER_PATH } from './runner-protocol.js';

export interface App {
  config: Config;
  server: Server;
  storage: Storage;
  metrics: Metrics;
  authenticator: Authenticator;
  listen(port?: number, host?: string): Promise<string>;
  url(): string;
  /** Stops accepting, lets in-flight requests finish (bounded), then closes the database. */
  close(graceMs?: number): Promise<void>;
}

export interface AppOptions {
  config: Config;
  database: DatabaseHandle;
  logger: Logger;
  /** The HS256 secret (in dev mode generated at start). */
  jwtSecret: string;
  /** GraphiQL's pre-filled Authorization header (dev mode). */
  graphiqlDemo?: GraphiQLDemo;
}

/** Per-request facts gathered along the way for the access log line. */
interface RequestLog {
  operation?: string;
  operationType?: string;
  installId?: string;
  principal?: string;
}

type ServerContext = { caller: Caller; log: RequestLog };

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade']);

const REQUEST_ID_RE = /^[A-Za-z0-9._:-]{1,128}$/;

/** The operation Yoga executes: the one named by operationName, else the document's only one. */
function executedOperation(document: DocumentNode, operationName: string | null | undefined): OperationDefinitionNode | undefined {
  const ops = document.definitions.filter((d): d is OperationDefinitionNode => d.kind === 'OperationDefinition');
  return operationName ? ops.find((d) => d.name?.value === operationName) : ops[0];
}

/** The log's operation name: the operation's own name, else its root fields (anonymous queries). */
function operationLabel(op: OperationDefinitionNode): string {
  if (op.name) return op.name.value.slice(0, 100);
  const fields = new Set<string>();
  for (const s of op.selectionSet.selections) if (s.kind === 'Field') fields.add(s.name.value);
  return [...fields].join(',').slice(0, 100) || op.operation;
}

/** Armor's limits as ordinary validation errors (GRAPHQL_VALIDATION_FAILED, HTTP 400), not thrown ones. */
const REPORT_ARMOR_REJECTION = {
  propagateOnRejection: false,
  onReject: [(ctx: ValidationContext | null, error: GraphQLError) => ctx?.reportError(error)],
};

/** The request as a fetch Request, for yoga.fetch (everything the fast path leaves to Yoga). */
function toFetchRequest(req: IncomingMessage, url: string, body: Buffer | undefined): Request {
  const headers = new Headers();
  for (const [k, v] of Object.entries(req.headers)) {
    if (v !== undefined) headers.set(k, Array.isArray(v) ? v.join(', ') : v);
  }
  return new Request(url, { method: req.method, headers, body: body && body.length > 0 ? (body as unknown as BodyInit) : undefined });
}

export function createApp(opts: AppOptions): App {
  const { config, database, logger } = opts;
  const metrics = createMetrics(database.poolStats, { installLabels: config.metricsInstallLabels });
  const storage = new Storage(database.db, config, metrics.storageHooks);
  const authenticator = createAuthenticator({
    jwtSecret: opts.jwtSecret,
    runnerTokens: config.runnerTokens,
    findInstall: (id) => storage.loadInstall(null, id),
    extensionDoorsDisabled: config.extensionDoorsDisabled,
  });
  const limiter = new RateLimiter(config.rateLimit.perSecond, config.rateLimit.burst);
  let ready = false;
  let closing = false;

  const observeOperation: Plugin<GraphQLContext & ServerContext> = {
    onExecute({ args }) {
      const log = (args.contextValue as ServerContext).log;
      const op = executedOperation(args.document as DocumentNode, args.operationName);
      if (log && op) {
        log.operationType = op.operation;
        log.operation = operationLabel(op);
      }
    },
  };

  const yoga = createYoga<ServerContext, GraphQLContext>({
    schema,
    graphqlEndpoint: '/graphql',
    landingPage: false,
    // CORS is decided here (corsHeaders), from STORAGE_CORS_ORIGINS only: Yoga's default would
    // reflect any Origin with allow-credentials.
    cors: false,
    logging: false,
    context: ({ caller }) => createGraphQLContext(caller, storage, config),
    graphiql: config.graphiql ? graphiqlOptions(opts.graphiqlDemo) : false,
    renderGraphiQL,
    maskedErrors: {
      maskError: (error) => maskError(error, (e) => logger.error({ err: e }, 'unexpected error in a resolver')),
    },
    plugins: [
      EnvelopArmorPlugin({
        maxDepth: { n: config.graphqlLimits.maxDepth, ignoreIntrospection: true, ...REPORT_ARMOR_REJECTION },
        maxAliases: { n: config.graphqlLimits.maxAliases, ...REPORT_ARMOR_REJECTION },
        maxTokens: { n: config.graphqlLimits.maxTokens },
        maxDirectives: { n: config.graphqlLimits.maxDirectives, ...REPORT_ARMOR_REJECTION },
        // Cost is priced by the Pothos complexity plugin from the real `first`/`keys` (variables
        // included); armor's estimate ignores variables and compounds 1.5x per level, so it
        // refused a contract-valid nested `recordList(first: 50)` page.
        costLimit: { enabled: false },
        blockFieldSuggestion: { enabled: true },
      }),
      observeOperation,
      requestErrorsAnswer400,
      useJitQueries(),
    ],
  });
  const fastPath = createFastPath(yoga);

  function corsHeaders(req: IncomingMessage): Record<string, string> | null {
    const origin = req.headers.origin;
    if (!origin || !config.corsOrigins.includes(origin)) return null;
    return { 'access-control-allow-origin': origin, vary: 'Origin' };
  }

  async function authenticate(req: IncomingMessage): Promise<Principal> {
    const header = (name: string) => {
      const v = req.headers[name];
      return Array.isArray(v) ? v[0] : v;
    };
    return authenticator.authenticate({
      authorization: header('authorization'),
      runnerAuth: header('x-runner-auth'),
      installId: header('x-install-id'),
    });
  }

  /** Extensions and the Runner act on one install: its bucket is charged once per request. */
  function rateLimit(principal: Principal): void {
    if (principal.kind === 'admin') return;
    const wait = limiter.take(principal.installId);
    if (wait > 0) {
      metrics.rateLimited.inc();
      throw new RateLimitedError(wait);
    }
  }

  async function handleGraphQL(req: IncomingMessage, res: ServerResponse, requestId: string, log: RequestLog): Promise<void> {
    const cors = corsHeaders(req) ?? {};
    if (req.method === 'OPTIONS') {
      if (Object.keys(cors).length > 0) {
        Object.assign(cors, {
          'access-control-allow-methods': 'GET, POST, OPTIONS',
          'access-control-allow-headers': 'Authorization, Content-Type, X-Request-Id',
          'access-control-max-age': '600',
        });
      }
      res.writeHead(204, cors);
      res.end();
      return;
    }
    const url = `http://${req.headers.host ?? 'localhost'}${req.url ?? '/graphql'}`;
    const wantsPage = req.method === 'GET' && (req.headers.accept ?? '').includes('text/html') && !new URL(url).searchParams.has('query');
    let caller: Caller | null = null;
    let body: Buffer | undefined;
    if (!wantsPage) {
      try {
        body = req.method === 'GET' || req.method === 'HEAD' ? undefined : await readBody(req, config.maxBodyBytes);
      } catch (error) {
        if (error instanceof BodyTooLargeError) {
          sendGraphQLError(res, 413, 'PAYLOAD_TOO_LARGE', `request body larger than ${config.maxBodyBytes} bytes`, { ...cors, connection: 'close' });
          return;
        }
        throw error;
      }
      try {
        const principal = await authenticate(req);
        log.principal = principal.kind;
        if (principal.kind !== 'admin') log.installId = principal.installId;
        rateLimit(principal);
        caller = { principal, requestId, installs: new Map() };
      } catch (error) {
        const mapped = mapDatabaseError(error);
        if (!(mapped instanceof StorageError)) throw mapped;
        const status = mapped instanceof UnavailableError ? 503 : mapped.code === 'UNAUTHENTICATED' ? 401 : mapped.code === 'RATE_LIMITED' ? 429 : 403;
        const headers: Record<string, string> = { ...cors };
        if (status === 401) headers['www-authenticate'] = 'Bearer';
        if (mapped instanceof RateLimitedError) headers['retry-after'] = String(mapped.retryAfterSeconds);
        sendGraphQLError(res, status, mapped.code, mapped.message, headers);
        return;
      }
    }
    // A fetch Request cannot carry TRACE (or CONNECT, TRACK): answer as Yoga does for other methods.
    if (req.method !== 'GET' && req.method !== 'HEAD' && req.method !== 'POST') {
      sendGraphQLError(res, 405, 'BAD_REQUEST', 'GraphQL only supports GET and POST requests.', { ...cors, allow: 'GET, POST' });
      return;
    }
    if (body && body.length > 0 && !(req.headers['content-type'] ?? '').toLowerCase().startsWith('multipart/') && !isUtf8Body(body)) {
      sendGraphQLError(res, 400, 'BAD_REQUEST', 'the request body is not valid UTF-8', cors);
      return;
    }
    const serverContext: ServerContext = {
      caller: caller ?? { principal: { kind: 'admin', tenantId: '', actor: '' }, requestId },
      log,
    };
    const params = fastPathParams(req.method, req.url, req.headers, body);
    const answer = params ? await fastPath(params, url, req.headers, serverContext) : await answerOf(await yoga.fetch(toFetchRequest(req, url, body), serverContext));
    const outHeaders: Record<string, string> = { ...cors };
    for (const [k, v] of answer.headers) {
      // Hop-by-hop headers are this server's to decide: Yoga's SSE answer says "Connection: keep-alive",
      // which kept the socket open after a client asked to close it.
      if (!HOP_BY_HOP.has(k.toLowerCase())) outHeaders[k] = v;
    }
    outHeaders['content-length'] = String(typeof answer.body === 'string' ? Buffer.byteLength(answer.body) : answer.body.length);
    res.writeHead(answer.status, outHeaders);
    res.end(answer.body);
  }

  async function route(req: IncomingMessage, res: ServerResponse, requestId: string, log: RequestLog): Promise<string> {
    const path = (req.url ?? '/').split('?')[0]!;
    if (path === '/graphql') {
      await handleGraphQL(req, res, requestId, log);
      return 'graphql';
    }
    if (path === '/healthz' && req.method === 'GET') {
      sendJson(res, 200, { status: 'ok' });
      return 'healthz';
    }
    if (path === '/readyz' && req.method === 'GET') {
      try {
        await database.ping();
        ready ||= await migrationsApplied(database.db);
      } catch {
        ready = false;
        sendJson(res, 503, { status: 'unavailable', database: 'unreachable' });
        return 'readyz';
      }
      sendJson(res, ready && !closing ? 200 : 503, { status: ready && !closing ? 'ready' : closing ? 'shutting down' : 'migrations pending' });
      return 'readyz';
    }
    if (path === '/metrics' && req.method === 'GET') {
      const text = await metrics.registry.metrics();
      res.writeHead(200, { 'content-type': metrics.registry.contentType });
      res.end(text);
      return 'metrics';
    }
    if (path.startsWith(RUNNER_PATH)) {
      await handleRunnerRequest(req, res, path, {
        storage,
        authenticate: async (installId) => {
          const principal = await authenticator.authenticate({
            runnerAuth: typeof req.headers['x-runner-auth'] === 'string' ? req.headers['x-runner-auth'] : '',
            installId,
          });
          log.principal = principal.kind;
          if (principal.kind !== 'admin') log.installId = principal.installId;
          rateLimit(principal);
          return principal;
        },
        requestId,
        maxBodyBytes: config.maxBodyBytes,
        logError: (e) => logger.error({ err: e, requestId }, 'unexpected error in the runner protocol'),
        log,
      });
      return 'runner';
    }
    sendJson(res, 404, { error: 'not found' });
    return 'unknown';
  }

  /** Responses not yet finished: on shutdown they are told to close their connection. */
  const inFlight = new Set<ServerResponse>();

  const server = createServer((req, res) => {
    if (closing) {
      // A request racing the shutdown on a kept-alive connection: refused before anything is done.
      res.setHeader('connection', 'close');
      sendJson(res, 503, { errors: [{ message: new UnavailableError().message, extensions: { code: 'INTERNAL' } }] });
      return;
    }
    inFlight.add(res);
    res.once('close', () => {
      inFlight.delete(res);
      if (closing) setImmediate(() => server.closeIdleConnections());
    });
    const started = performance.now();
    const given = req.headers['x-request-id'];
    const requestId = typeof given === 'string' && REQUEST_ID_RE.test(given) ? given : randomUUID();
    res.setHeader('x-request-id', requestId);
    const log: RequestLog = {};
    let routeName = 'unknown';
    route(req, res, requestId, log)
      .then((r) => {
        routeName = r;
      })
      .catch((error: unknown) => {
        const mapped = mapDatabaseError(error);
        if (mapped instanceof UnavailableError) {
          if (!res.headersSent) sendJson(res, 503, { errors: [{ message: mapped.message, extensions: { code: 'INTERNAL' } }] });
        } else {
          logger.error({ err: error, requestId }, 'unexpected error');
          if (!res.headersSent) sendJson(res, 500, { errors: [{ message: 'Unexpected error.', extensions: { code: 'INTERNAL' } }] });
        }
        if (!res.writableEnded) res.end();
      })
      .finally(() => {
        const seconds = (performance.now() - started) / 1000;
        metrics.httpRequests.inc({ route: routeName, status: String(res.statusCode) });
        if (log.installId) metrics.installRequests?.inc({ install_id: log.installId, status: String(res.statusCode) });
        if (routeName === 'graphql' && log.operationType) {
          metrics.graphqlRequests.inc({ operation_type: log.operationType, outcome: res.statusCode < 400 ? 'ok' : 'error' });
          metrics.graphqlDuration.observe({ operation_type: log.operationType }, seconds);
        }
        if (routeName !== 'metrics' && routeName !== 'healthz' && routeName !== 'readyz') {
          logger.info(
            {
              requestId,
              method: req.method,
              route: routeName,
              operation: log.operation,
              operationType: log.operationType,
              principal: log.principal,
              installId: log.installId,
              status: res.statusCode,
              durationMs: Math.round(seconds * 1e5) / 100,
            },
            'request',
          );
        }
      });
  });
  server.keepAliveTimeout = 65_000;

  return {
    config,
    server,
    storage,
    metrics,
    authenticator,
    listen(port = config.port, host = config.host) {
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          resolve(this.url());
        });
      });
    },
    url() {
      const a = server.address() as AddressInfo;
      const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
      return `http://${host}:${a.port}`;
    },
    async close(graceMs = 10_000) {
      const deadline = performance.now() + graceMs;
      closing = true;
      // Kept-alive connections would keep the server open (and take new requests) until the grace
      // period ends: every response still to be sent closes its connection.
      for (const res of inFlight) if (!res.headersSent) res.setHeader('connection', 'close');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.closeAllConnections();
          resolve();
        }, graceMs);
        server.close(() => {
          clearTimeout(timer);
          resolve();
        });
        server.closeIdleConnections();
      });
      // A request cut off at the grace period may still hold a pool client (blocked in the
      // database), and the pool's end waits for it: bound the wait, the transaction never commits.
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        database.close(),
        new Promise<void>((resolve) => (timer = setTimeout(resolve, Math.max(1000, deadline - performance.now())))),
      ]).finally(() => clearTimeout(timer));
    },
  };
}
