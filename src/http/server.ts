/** The HTTP server: routes, CORS, body limits, credentials, rate limits, then Yoga or the Runner protocol. */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { EnvelopArmorPlugin } from '@escape.tech/graphql-armor';
import type { DocumentNode, GraphQLError, OperationDefinitionNode, ValidationContext } from 'graphql';
import { createYoga, type Plugin } from 'graphql-yoga';
import { createAuthenticator, credentialHeadersOf, type Authenticator } from '../auth/credentials.js';
import type { Config } from '../config.js';
import type { DatabaseHandle } from '../db/database.js';
import { migrationsApplied } from '../db/migrate.js';
import { createGraphQLContext, type GraphQLContext } from '../graphql/context.js';
import { maskError, requestErrorsAnswer400 } from '../graphql/errors.js';
import { byteUnits, rateUnits, runnerPrice, type Price } from '../graphql/cost.js';
import { BUDGETS_AT_ONCE, useCostLimits, useResponsePool } from '../graphql/cost-plugin.js';
import { useJitQueries } from '../graphql/jit.js';
import { useTrustedDocuments } from '../graphql/trusted-documents.js';
import { recordBytes } from '../graphql/work.js';
import { schema } from '../graphql/schema.js';
import type { Logger } from '../logger.js';
import { mapDatabaseError, RateLimitedError, StorageError, UnavailableError } from '../storage/errors.js';
import type { Caller, Principal } from '../storage/principal.js';
import { Storage } from '../storage/storage.js';
import { INSTALLS_CHANNEL } from '../storage/install-directory.js';
import { createLocalFeedNotifier, createPgFeedNotifier, listenConnectionString, sendFeedWakeups, type FeedNotifier } from '../storage/feed-notifier.js';
import { tracing as startedTracing } from '../tracing/index.js';
import { BodyTooLargeError, isJsonMediaType, isUtf8Body, jsonNestingExceeds, MAX_REQUEST_JSON_DEPTH, readBody, refuseOverDeepDocuments } from './body.js';
import { createGraphiQLPage, graphiqlOptions, isGraphiQLPageRequest, type GraphiQLDemo } from './graphiql.js';
import { answerOf, createFastPath, fastPathParams } from './graphql-fast-path.js';
import { clipForLog, errorForLog } from './log-fields.js';
import { createMetrics, type Metrics } from './metrics.js';
import { ADMISSION_UNITS, FairPool, InflightLimiter, InflightSlot, RateLimiter, type InstallRateLimit } from './rate-limit.js';
import { SharedRateLimiter } from './shared-rate-limit.js';
import { sendGraphQLError, sendJson, useGraphQLMediaType, useStoredJson } from './respond.js';
import { handleRunnerRequest, RUNNER_PATH } from './runner-protocol.js';
import { ADMIN_IO_RE, handleAdminIo } from './admin-io.js';

export interface App {
  config: Config;
  server: Server;
  storage: Storage;
  metrics: Metrics;
  authenticator: Authenticator;
  /** Change-feed wake-ups (NOTIFY/LISTEN on PostgreSQL): Subscription.changes follows them. */
  feedNotifier: FeedNotifier;
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

/** requestBytes: the POST body's length, or the GET URL's (what a write can echo back: src/graphql/cost-plugin.ts). */
type ServerContext = { caller: Caller; log: RequestLog; requestBytes: number };

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade']);

const REQUEST_ID_RE = /^[A-Za-z0-9._:-]{1,128}$/;

/** RFC 9110 Host: a DNS-ish name, IPv4 or [IPv6] literal, and an optional port. */
const HOST_RE = /^(?:[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,251}[A-Za-z0-9_.])?|\[[0-9A-Fa-f:.]{2,45}\])(?::(\d{1,5}))?$/;

/**
 * A request's Host, or null when it is malformed (or repeated): answered 400 before anything else,
 * where a URL built from it used to throw (a 500). HTTP/1.0 may omit it.
 */
function hostOf(req: IncomingMessage): string | null {
  let count = 0;
  for (let i = 0; i < req.rawHeaders.length; i += 2) if (req.rawHeaders[i]!.toLowerCase() === 'host') count++;
  const host = req.headers.host;
  if (count === 0 && req.httpVersionMajor === 1 && req.httpVersionMinor === 0) return 'localhost';
  if (count !== 1 || host === undefined) return null;
  const m = HOST_RE.exec(host);
  return m && (m[1] === undefined || Number(m[1]) <= 65535) ? host : null;
}

/** A body bigger than this (or of unknown length) is not read after an early refusal: the connection closes instead. */
const DRAIN_LIMIT_BYTES = 64 * 1024;

function hasLargeBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && !(Number(length) <= DRAIN_LIMIT_BYTES));
}

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
  // The body was checked to be application/json (any case, any parameters): Yoga matches it exactly.
  if (body) headers.set('content-type', 'application/json');
  return new Request(url, { method: req.method, headers, body: body && body.length > 0 ? (body as unknown as BodyInit) : undefined });
}

export function createApp(opts: AppOptions): App {
  const { config, database, logger } = opts;
  const metrics = createMetrics(database.poolStats, { installLabels: config.metricsInstallLabels });
  // Read once: undefined unless OTEL_EXPORTER_OTLP_ENDPOINT is set (src/tracing).
  const tracing = startedTracing();
  // One LISTEN connection per gateway on PostgreSQL; PGlite is one process.
  const listens = database.kind === 'postgres' && !!database.connectionString;
  const feedNotifier = listens
    ? createPgFeedNotifier({
        connectionString: listenConnectionString(database.connectionString!),
        send: (payloads) => sendFeedWakeups(database.db, payloads),
        log: logger,
        // Install changes, on the same LISTEN connection (src/storage/install-directory.ts).
        channels: [
          {
            channel: INSTALLS_CHANNEL,
            onNotify: (id) => storage.installCache.forget(id),
            onListening: () => storage.installCache.resume(),
            onLost: () => storage.installCache.suspend(),
          },
        ],
      })
    : createLocalFeedNotifier();
  // Aborted when the server closes: every subscription stream ends cleanly (`complete`).
  const shutdown = new AbortController();
  const feed = { notifier: feedNotifier, shutdown: shutdown.signal };
  const storage = new Storage(database.db, config, { ...metrics.storageHooks, onChanged: (tenantId, installId) => feedNotifier.notify(tenantId, installId) });
  // Until the LISTEN connection is in place, install changes could be missed: no install cache.
  if (listens) storage.installCache.suspend();
  const authenticator = createAuthenticator({
    jwtSecret: opts.jwtSecret,
    runnerTokens: config.runnerTokens,
    findInstall: (id) => storage.loadInstall(null, id),
    extensionDoorsDisabled: config.extensionDoorsDisabled,
    maxTokenLifetimeSeconds: config.maxTokenLifetimeSeconds,
  });
  // GraphiQL is served here, never by Yoga: Yoga would decide it by parsing the URL its own way.
  const graphiqlPage = config.graphiql ? createGraphiQLPage(graphiqlOptions(opts.graphiqlDemo), config.graphiqlRateLimit) : null;
  // One interface either way: the in-process bucket, or (REDIS_URL) the one all instances share.
  const limiter: InstallRateLimit = config.rateLimit.redis
    ? new SharedRateLimiter({
        perSecond: config.rateLimit.perSecond,
        burst: config.rateLimit.burst,
        redis: config.rateLimit.redis,
        log: logger,
        onBackendError: (operation) => metrics.rateLimitBackendErrors.inc({ operation }),
      })
    : new RateLimiter(config.rateLimit.perSecond, config.rateLimit.burst);
  const inflight = new InflightLimiter(config.rateLimit.maxInflight, config.rateLimit.inflightWaitMs);
  const responsePool = new FairPool(BUDGETS_AT_ONCE * config.cost.maxResponseBytes, config.rateLimit.inflightWaitMs);
  let ready = false;
  let closing = false;

  // The executed operation's type and log label, worked out once per parsed document (Yoga's parser
  // cache hands the same DocumentNode to every request with the same query text).
  const operationFacts = new WeakMap<DocumentNode, Map<string, { type: string; label: string } | null>>();
  const factsOf = (document: DocumentNode, operationName: string | null | undefined) => {
    let byName = operationFacts.get(document);
    if (!byName) operationFacts.set(document, (byName = new Map()));
    const name = operationName ?? '';
    let facts = byName.get(name);
    if (facts === undefined) {
      const op = executedOperation(document, operationName);
      facts = op ? { type: op.operation, label: operationLabel(op) } : null;
      // Bounded: a document named with ever new operation names must not grow its entry for ever.
      if (byName.size < 16) byName.set(name, facts);
    }
    return facts;
  };

  const observeOperation: Plugin<GraphQLContext & ServerContext> = {
    onExecute({ args }) {
      const log = (args.contextValue as ServerContext).log;
      const facts = log ? factsOf(args.document as DocumentNode, args.operationName) : null;
      if (log && facts) {
        log.operationType = facts.type;
        log.operation = facts.label;
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
    context: ({ caller, requestBytes }) => createGraphQLContext(caller, storage, config, requestBytes, feed),
    graphiql: false,
    maskedErrors: {
      maskError: (error) => maskError(error, (e) => logger.error({ err: errorForLog(e) }, 'unexpected error in a resolver')),
    },
    plugins: [
      ...(tracing ? [tracing.graphqlPlugin] : []),
      // First: a hash becomes its document (or the request is refused) before anything reads the query.
      useTrustedDocuments<ServerContext>(config.trustedDocuments.documents, config.trustedDocuments.mode, (c) => c.caller),
      refuseOverDeepDocuments,
      EnvelopArmorPlugin({
        maxDepth: { n: config.graphqlLimits.maxDepth, ignoreIntrospection: true, ...REPORT_ARMOR_REJECTION },
        maxAliases: { n: config.graphqlLimits.maxAliases, ...REPORT_ARMOR_REJECTION },
        maxTokens: { n: config.graphqlLimits.maxTokens },
        maxDirectives: { n: config.graphqlLimits.maxDirectives, ...REPORT_ARMOR_REJECTION },
        // Cost is priced by useCostLimits (src/graphql/cost.ts) from the real `first`/`keys`
        // (variables included); armor's estimate ignores variables and compounds 1.5x per level,
        // so it refused a contract-valid nested `recordList(first: 50)` page.
        costLimit: { enabled: false },
        blockFieldSuggestion: { enabled: true },
      }),
      observeOperation,
      requestErrorsAnswer400,
      // Before jit: a refused or rate-limited operation never runs.
      useCostLimits({ config, storage, limiter, onRateLimited: () => metrics.rateLimited.inc() }),
      useJitQueries(),
      // After jit: it wraps the executor that actually runs.
      useResponsePool(responsePool, () => metrics.rateLimited.inc()),
      // q-values decide between application/json and application/graphql-response+json, as for refusals.
      useGraphQLMediaType,
      useStoredJson,
    ],
  });
  const fastPath = createFastPath(yoga);

  function corsHeaders(req: IncomingMessage): Record<string, string> | null {
    const origin = req.headers.origin;
    if (!origin || !config.corsOrigins.includes(origin)) return null;
    return { 'access-control-allow-origin': origin, vary: 'Origin' };
  }

  async function authenticate(req: IncomingMessage): Promise<Principal> {
    return authenticator.authenticate(credentialHeadersOf(req));
  }

  /**
   * Extensions and the Runner act on one install: a request is let in when its bucket has
   * ADMISSION_UNITS (its price pays the rest once known: charge) and, beyond the install's bound on
   * requests in flight, waits its turn; the slot is held until the response is finished or abandoned,
   * except while the request stands aside (InflightSlot.aside, through Caller.whileQueued).
   */
  async function admit(principal: Principal, res: ServerResponse): Promise<InflightSlot | undefined> {
    if (principal.kind === 'admin') return undefined;
    const wait = await limiter.take(principal.installId, ADMISSION_UNITS);
    if (wait > 0) {
      metrics.rateLimited.inc();
      throw new RateLimitedError(wait);
    }
    try {
      if (!inflight.enabled) return undefined;
      const onClose = (cancel: () => void) => res.once('close', cancel);
      const slot = new InflightSlot(inflight, principal.installId, await inflight.acquire(principal.installId, onClose), onClose);
      const end = () => slot.end();
      res.once('finish', end).once('close', end);
      return slot;
    } catch (error) {
      if (error instanceof RateLimitedError) metrics.rateLimited.inc();
      throw error;
    }
  }

  /** The rest of a priced request's cost beyond admission (GraphQL charges in src/graphql/cost-plugin.ts). */
  async function charge(principal: Principal, price: Price): Promise<void> {
    if (principal.kind === 'admin') return;
    const wait = await limiter.take(principal.installId, rateUnits(price), ADMISSION_UNITS);
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
    // GraphiQL only for `GET /graphql` exactly (graphiql.ts): every other request is a GraphQL
    // request and needs a credential, whatever its URL, fragment, encoding or Accept header.
    if (graphiqlPage && isGraphiQLPageRequest(req)) {
      await graphiqlPage.serve(req, res, cors);
      return;
    }
    // route() checked the Host: this URL parses.
    const url = `http://${req.headers.host ?? 'localhost'}${req.url ?? '/graphql'}`;
    // A refusal before the body is read does not read a large one either: the connection closes.
    const early = (headers: Record<string, string>) => (hasLargeBody(req) ? { ...headers, connection: 'close' } : headers);
    // Credentials before anything of the body is read (contract, "Bodies").
    let caller: Caller;
    let slot: InflightSlot | undefined;
    try {
      const principal = await authenticate(req);
      log.principal = principal.kind;
      if (principal.kind !== 'admin') log.installId = principal.installId;
      slot = await admit(principal, res);
      const admitted = slot;
      caller = { principal, requestId, installs: new Map(), whileQueued: admitted && ((wait) => admitted.aside(wait)) };
    } catch (error) {
      const mapped = mapDatabaseError(error);
      if (!(mapped instanceof StorageError)) throw mapped;
      const status = mapped instanceof UnavailableError ? 503 : mapped.code === 'UNAUTHENTICATED' ? 401 : mapped.code === 'RATE_LIMITED' ? 429 : 403;
      const headers: Record<string, string> = { ...cors };
      if (status === 401) headers['www-authenticate'] = 'Bearer';
      if (mapped instanceof RateLimitedError) headers['retry-after'] = String(mapped.retryAfterSeconds);
      // The contract's code for a refusal with 503 is UNAVAILABLE.
      sendGraphQLError(res, status, status === 503 ? 'UNAVAILABLE' : mapped.code, mapped.message, early(headers));
      return;
    }
    // A fetch Request cannot carry TRACE (or CONNECT, TRACK): other methods are refused here.
    if (req.method !== 'GET' && req.method !== 'HEAD' && req.method !== 'POST') {
      sendGraphQLError(res, 405, 'METHOD_NOT_ALLOWED', 'GraphQL only supports GET and POST requests.', early({ ...cors, allow: 'GET, POST' }));
      return;
    }
    let body: Buffer | undefined;
    if (req.method === 'POST') {
      // Only JSON bodies: multipart and form bodies cost parse time (40,000 parts: 1.6 s) for nothing.
      if (!isJsonMediaType(req.headers['content-type'])) {
        sendGraphQLError(res, 415, 'UNSUPPORTED_MEDIA_TYPE', 'a GraphQL POST body must be application/json', early(cors));
        return;
      }
      try {
        body = await readBody(req, config.maxBodyBytes);
      } catch (error) {
        if (error instanceof BodyTooLargeError) {
          sendGraphQLError(res, 413, 'PAYLOAD_TOO_LARGE', `request body larger than ${config.maxBodyBytes} bytes`, { ...cors, connection: 'close' });
          return;
        }
        throw error;
      }
      if (!isUtf8Body(body)) {
        sendGraphQLError(res, 400, 'BAD_REQUEST', 'the request body is not valid UTF-8', cors);
        return;
      }
      if (jsonNestingExceeds(body, MAX_REQUEST_JSON_DEPTH)) {
        sendGraphQLError(res, 400, 'BAD_REQUEST', `the request body nests JSON deeper than ${MAX_REQUEST_JSON_DEPTH} levels`, cors);
        return;
      }
    } else {
      // GET variables, read from the query string exactly as Yoga will (parseGETRequest).
      const raw = req.url ?? '';
      const search = raw.includes('?') ? new URLSearchParams(raw.slice(raw.indexOf('?') + 1)) : null;
      const variables = search?.get('variables') ?? null;
      if (variables && jsonNestingExceeds(Buffer.from(variables), MAX_REQUEST_JSON_DEPTH)) {
        sendGraphQLError(res, 400, 'BAD_REQUEST', `variables nest JSON deeper than ${MAX_REQUEST_JSON_DEPTH} levels`, cors);
        return;
      }
      // Yoga parses them with a bare JSON.parse, and its SyntaxError became an INTERNAL error.
      for (const name of ['variables', 'extensions']) {
        const text = search?.get(name);
        if (text && !isJsonText(text)) {
          sendGraphQLError(res, 400, 'BAD_REQUEST', `the ${name} parameter is not valid JSON`, cors);
          return;
        }
      }
    }
    const serverContext: ServerContext = { caller, log, requestBytes: body ? body.length : (req.url ?? '').length };
    const params = fastPathParams(req.method, req.url, req.headers, body);
    const answer = params ? await fastPath(params, url, req.headers, serverContext) : await answerOf(await yoga.fetch(toFetchRequest(req, url, body), serverContext));
    const outHeaders: Record<string, string> = { ...cors };
    for (const [k, v] of answer.headers) {
      // Hop-by-hop headers are this server's to decide: Yoga's SSE answer says "Connection: keep-alive",
      // which kept the socket open after a client asked to close it.
      if (!HOP_BY_HOP.has(k.toLowerCase())) outHeaders[k] = v;
    }
    if (answer.stream) {
      // A stream (a subscription over SSE) lives long: it no longer counts as a request in flight.
      slot?.end();
      await sendStream(res, answer.status, outHeaders, answer.stream);
      return;
    }
    let out = answer.body;
    if (answer.status === 406 && out.length === 0) {
      // Yoga answers an Accept it cannot meet with an empty 406; say why, in the one type every client reads.
      out = `Not Acceptable: this request can be answered only as one of: ${outHeaders.accept ?? 'application/json'}\n`;
      outHeaders['content-type'] = 'text/plain; charset=utf-8';
    }
    outHeaders['content-length'] = String(typeof out === 'string' ? Buffer.byteLength(out) : out.length);
    res.writeHead(answer.status, outHeaders);
    res.end(out);
  }

  async function route(req: IncomingMessage, res: ServerResponse, requestId: string, log: RequestLog): Promise<string> {
    // A malformed Host is the request's fault: 400 before credentials or anything else are looked at.
    if (hostOf(req) === null) {
      sendGraphQLError(res, 400, 'BAD_REQUEST', 'malformed Host header', { connection: 'close' });
      return 'unknown';
    }
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
      // REDIS_URL: failing closed, an instance without Redis refuses extension requests (unready);
      // failing open, it serves them on its own bucket (ready, and says so).
      const rateLimit = await limiter.health();
      if (rateLimit?.redis === 'unreachable' && rateLimit.failure === 'closed') {
        sendJson(res, 503, { status: 'unavailable', redis: 'unreachable', rateLimit: 'fail closed' });
        return 'readyz';
      }
      if (rateLimit?.redis === 'unreachable' && ready && !closing) {
        sendJson(res, 200, { status: 'ready', redis: 'unreachable', rateLimit: 'fail open: per-instance buckets' });
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
    if (path === '/healthz' || path === '/readyz' || path === '/metrics') {
      sendJson(res, 405, { error: 'use GET', code: 'METHOD_NOT_ALLOWED' }, { allow: 'GET' });
      return path.slice(1);
    }
    if (ADMIN_IO_RE.test(path)) {
      await handleAdminIo(req, res, path, {
        storage,
        authenticator,
        requestId,
        log,
        logError: (e) => logger.error({ err: errorForLog(e), requestId }, 'unexpected error in export or import'),
      });
      return 'admin-io';
    }
    if (path.startsWith(RUNNER_PATH)) {
      let slot: InflightSlot | undefined;
      await handleRunnerRequest(req, res, path, {
        storage,
        authenticate: async (installId) => {
          // Only x-runner-auth is a credential here; a bearer token beside it is refused (one credential per request).
          const principal = await authenticator.authenticate({ ...credentialHeadersOf(req), installId, runnerDoor: true });
          log.principal = principal.kind;
          if (principal.kind !== 'admin') log.installId = principal.installId;
          slot = await admit(principal, res);
          return principal;
        },
        whileQueued: (wait) => (slot ? slot.aside(wait) : wait),
        charge: async (principal, operation, body) => charge(principal, runnerPrice(operation, body, config.limits)),
        returned: (principal, records) => {
          if (principal.kind !== 'admin') limiter.debit(principal.installId, byteUnits(records.reduce((n, r) => n + recordBytes(r), 0)));
        },
        requestId,
        maxBodyBytes: config.maxBodyBytes,
        logError: (e) => logger.error({ err: errorForLog(e), requestId }, 'unexpected error in the runner protocol'),
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
      sendGraphQLError(res, 503, 'UNAVAILABLE', new UnavailableError().message);
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
    (tracing ? tracing.request(req, res, requestId, () => route(req, res, requestId, log)) : route(req, res, requestId, log))
      .then((r) => {
        routeName = r;
      })
      .catch((error: unknown) => {
        const mapped = mapDatabaseError(error);
        if (mapped instanceof UnavailableError) {
          if (!res.headersSent) sendGraphQLError(res, 503, 'UNAVAILABLE', mapped.message);
        } else {
          logger.error({ err: errorForLog(error), requestId }, 'unexpected error');
          if (!res.headersSent) sendGraphQLError(res, 500, 'INTERNAL', 'Unexpected error.');
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
              // Caller-controlled (a Runner's operation field, a GraphQL operation name): clipped to 1 KiB.
              operation: log.operation === undefined ? undefined : clipForLog(log.operation),
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
    feedNotifier,
    async close(graceMs = 10_000) {
      const deadline = performance.now() + graceMs;
      closing = true;
      // Subscription streams end now (`complete`), so the server can close within the grace period.
      shutdown.abort();
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
      await feedNotifier.close();
      await limiter.close();
    },
  };
}

/**
 * Writes a streamed answer (GraphQL over SSE) as it comes, at the pace the client reads it: the
 * next chunk is pulled only once the socket has taken the last (so a slow subscriber holds at most
 * a page on the server), and a client that goes away cancels the stream (ending its subscription).
 */
async function sendStream(res: ServerResponse, status: number, headers: Record<string, string>, stream: ReadableStream<Uint8Array>): Promise<void> {
  res.writeHead(status, headers);
  res.flushHeaders();
  const reader = stream.getReader();
  let gone = false;
  const onClose = () => {
    gone = true;
    reader.cancel().catch(() => undefined);
  };
  res.once('close', onClose);
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done || gone) break;
      if (!res.write(value)) {
        await new Promise<void>((resolve) => {
          const go = () => {
            res.off('drain', go);
            res.off('close', go);
            resolve();
          };
          res.once('drain', go).once('close', go);
        });
      }
    }
  } catch {
    // The stream failed or was cancelled: the answer ends here.
  } finally {
    res.off('close', onClose);
    if (!gone) reader.cancel().catch(() => undefined);
    if (!res.writableEnded) res.end();
  }
}

function isJsonText(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}
