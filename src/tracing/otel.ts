/**
 * The OpenTelemetry SDK side of tracing (./index.ts), loaded only when tracing is started. Spans are
 * made explicitly here, no auto-instrumentation (its require hooks do not see ES modules reliably):
 *
 * - HTTP: a server span per request (src/http/server.ts calls `request`), parented on an incoming
 *   W3C `traceparent`; http.request.method, url.path, http.route, http.response.status_code.
 *   Health probes and metrics scrapes are left out.
 * - GraphQL: a span per executed operation (a Yoga plugin), graphql.operation.type and .name. The
 *   document is not recorded: its literals may be user data.
 * - SQL: a client span per statement, at the Kysely driver (every door and both backends pass
 *   there), db.system.name postgresql and db.query.text: the parameterised text only. Parameter
 *   values are never recorded (they are user data), nor error messages (PostgreSQL's may quote them):
 *   a failed statement records its SQLSTATE.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  context,
  createContextKey,
  defaultTextMapGetter,
  diag,
  DiagLogLevel,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Context,
  type Span,
} from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, NodeTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-node';
import {
  ATTR_DB_OPERATION_NAME,
  ATTR_DB_QUERY_TEXT,
  ATTR_DB_RESPONSE_STATUS_CODE,
  ATTR_DB_SYSTEM_NAME,
  ATTR_ERROR_TYPE,
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_REQUEST_METHOD_ORIGINAL,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_HTTP_ROUTE,
  ATTR_SERVICE_NAME,
  ATTR_URL_PATH,
  ATTR_URL_SCHEME,
  DB_SYSTEM_NAME_VALUE_POSTGRESQL,
} from '@opentelemetry/semantic-conventions';
import { getOperationAST, type DocumentNode } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import type { CompiledQuery, DatabaseConnection, Dialect, Driver, QueryCompiler, QueryResult, TransactionSettings } from 'kysely';
import type { Config } from '../config.js';
import { RUNNER_PATH } from '../http/runner-protocol.js';
import type { Tracing, TracingOptions } from './index.js';

// Incubating conventions are copied, not imported (the package's advice: they may change in a minor release).
const ATTR_GRAPHQL_OPERATION_NAME = 'graphql.operation.name';
const ATTR_GRAPHQL_OPERATION_TYPE = 'graphql.operation.type';
/** The older name of db.system.name, which many tracing back ends still read. */
const ATTR_DB_SYSTEM = 'db.system';
const ATTR_REQUEST_ID = 'ext_storage.request_id';

/** http.route by the route name src/http/server.ts's router answers with. */
const ROUTES: Readonly<Record<string, string>> = {
  graphql: '/graphql',
  runner: `${RUNNER_PATH}{installId}`,
};

/** Probes and scrapes: frequent, all alike, no caller behind them: not traced. */
const UNTRACED_PATHS = new Set(['/healthz', '/readyz', '/metrics']);

const KNOWN_METHODS = new Set(['CONNECT', 'DELETE', 'GET', 'HEAD', 'OPTIONS', 'PATCH', 'POST', 'PUT', 'TRACE', 'QUERY']);

/** Caller-chosen strings in attributes (a path, an operation name) are clipped. */
const clip = (s: string, max: number) => (s.length > max ? s.slice(0, max) : s);

/** The statement's first keyword (SELECT, WITH, BEGIN …), past leading comments. */
const LEADING_KEYWORD_RE = /^(?:\s+|--[^\n]*(?:\n|$)|\/\*[\s\S]*?\*\/)*([A-Za-z]+)/;

const OPERATION_SPAN = createContextKey('ext-storage-gateway GraphQL operation span');

export function createTracing(settings: NonNullable<Config['tracing']>, options: TracingOptions): Tracing {
  if (options.logger) {
    const logger = options.logger;
    const noop = () => undefined;
    diag.setLogger(
      {
        error: (message, ...args) => logger.error({ otel: args.map(String) }, `opentelemetry: ${message}`),
        warn: (message, ...args) => logger.warn({ otel: args.map(String) }, `opentelemetry: ${message}`),
        info: noop,
        debug: noop,
        verbose: noop,
      },
      DiagLogLevel.WARN,
    );
  }
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: settings.serviceName }),
    spanProcessors: [
      options.exporter
        ? new SimpleSpanProcessor(options.exporter)
        : new BatchSpanProcessor(new OTLPTraceExporter({ url: `${settings.endpoint}/v1/traces` })),
    ],
  });
  const propagator = new W3CTraceContextPropagator();
  // Registers the AsyncLocalStorage context manager too: the active span follows each request's awaits.
  provider.register({ propagator });
  const tracer = provider.getTracer('ext-storage-gateway');

  /**
   * A statement's span, a child of the active span. Outside any (migrations at start-up), or in a
   * trace the sampler left out (a traceparent not sampled), none is made.
   */
  function statement<T>(text: string, run: () => Promise<T>): Promise<T> {
    const parent = context.active();
    if (!trace.getSpan(parent)?.isRecording()) return run();
    const operation = LEADING_KEYWORD_RE.exec(text)?.[1]?.toUpperCase() ?? 'SQL';
    const span = tracer.startSpan(
      operation,
      {
        kind: SpanKind.CLIENT,
        attributes: {
          [ATTR_DB_SYSTEM_NAME]: DB_SYSTEM_NAME_VALUE_POSTGRESQL,
          [ATTR_DB_SYSTEM]: DB_SYSTEM_NAME_VALUE_POSTGRESQL,
          [ATTR_DB_OPERATION_NAME]: operation,
          // The text with its $n placeholders: the values are sent apart and never recorded.
          [ATTR_DB_QUERY_TEXT]: text,
        },
      },
      parent,
    );
    return run().then(
      (result) => {
        span.end();
        return result;
      },
      (error: unknown) => {
        const code = (error as { code?: unknown } | null)?.code;
        const sqlState = typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
        if (sqlState) span.setAttribute(ATTR_DB_RESPONSE_STATUS_CODE, sqlState);
        span.setAttribute(ATTR_ERROR_TYPE, sqlState ?? (error instanceof Error ? error.name : 'Error'));
        span.setStatus({ code: SpanStatusCode.ERROR });
        span.end();
        throw error;
      },
    );
  }

  const graphqlPlugin: Plugin = {
    // Wraps the execute phase (the onExecute hooks, then resolvers): the resolvers' statements,
    // DataLoader batches included, run with the operation span active.
    instrumentation: {
      execute(_payload, wrapped) {
        const parent = context.active();
        const span = tracer.startSpan('GraphQL operation', { kind: SpanKind.INTERNAL }, parent);
        return context.with(trace.setSpan(parent, span).setValue(OPERATION_SPAN, span), () => {
          let done;
          try {
            done = wrapped();
          } catch (error) {
            failed(span);
            throw error;
          }
          // A promise, or one of envelop's synchronous stand-ins for one (thenable too).
          if (typeof (done as PromiseLike<void> | undefined)?.then !== 'function') {
            span.end();
            return done;
          }
          return Promise.resolve(done as PromiseLike<void>).then(
            () => span.end(),
            (error: unknown) => {
              failed(span);
              throw error;
            },
          );
        });
      },
    },
    // First in the plugin list: it names the span even when a later hook refuses the operation (cost, rate).
    onExecute({ args }) {
      const span = context.active().getValue(OPERATION_SPAN) as Span | undefined;
      if (!span) return;
      const op = getOperationAST(args.document as DocumentNode, args.operationName);
      if (op) {
        span.setAttribute(ATTR_GRAPHQL_OPERATION_TYPE, op.operation);
        if (op.name) span.setAttribute(ATTR_GRAPHQL_OPERATION_NAME, clip(op.name.value, 100));
        span.updateName(op.name ? `${op.operation} ${clip(op.name.value, 100)}` : op.operation);
      }
      return {
        onExecuteDone({ result }) {
          // Errors of the GraphQL response (refusals, masked failures); their messages are not recorded.
          if (!(Symbol.asyncIterator in result) && result.errors?.length) span.setStatus({ code: SpanStatusCode.ERROR });
        },
      };
    },
  };

  return {
    request(req, res, requestId, handle) {
      const path = (req.url ?? '/').split('?', 1)[0]!;
      if (UNTRACED_PATHS.has(path)) return handle();
      const parent = propagator.extract(ROOT_CONTEXT, req.headers, defaultTextMapGetter);
      const method = KNOWN_METHODS.has(req.method ?? '') ? req.method! : '_OTHER';
      const span = tracer.startSpan(
        method === '_OTHER' ? 'HTTP' : method,
        {
          kind: SpanKind.SERVER,
          attributes: {
            [ATTR_HTTP_REQUEST_METHOD]: method,
            [ATTR_URL_SCHEME]: 'http',
            [ATTR_URL_PATH]: clip(path, 512),
            [ATTR_REQUEST_ID]: requestId,
            ...(method === '_OTHER' ? { [ATTR_HTTP_REQUEST_METHOD_ORIGINAL]: clip(req.method ?? '', 32) } : {}),
          },
        },
        parent,
      );
      // Ends when the response is closed (its status final: the server's own 500 comes after the
      // handling rejects) and the handling has settled (the route is known).
      let pending = 2;
      const end = () => {
        if (--pending > 0) return;
        endRequestSpan(span, res);
      };
      res.once('close', end);
      const routed = context.with(trace.setSpan(parent, span), handle);
      routed
        .then((name) => {
          const route = ROUTES[name];
          if (route) {
            span.setAttribute(ATTR_HTTP_ROUTE, route);
            span.updateName(`${method === '_OTHER' ? 'HTTP' : method} ${route}`);
          }
        }, noop)
        .finally(end);
      return routed;
    },
    graphqlPlugin,
    wrapDialect: (dialect) => new TracedDialect(dialect, statement),
    captureContext() {
      const captured = context.active();
      return (run) => context.with(captured, run);
    },
    shutdown: () => provider.shutdown(),
  };
}

function noop(): void {}

function failed(span: Span): void {
  span.setStatus({ code: SpanStatusCode.ERROR });
  span.end();
}

function endRequestSpan(span: Span, res: ServerResponse): void {
  if (res.headersSent) {
    span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, res.statusCode);
    // Server spans: a 4xx is the caller's error, not the server's (OpenTelemetry HTTP conventions).
    if (res.statusCode >= 500) {
      span.setAttribute(ATTR_ERROR_TYPE, String(res.statusCode));
      span.setStatus({ code: SpanStatusCode.ERROR });
    }
  } else {
    // The connection closed before an answer was sent (the client went away, or the grace period ended).
    span.setAttribute(ATTR_ERROR_TYPE, 'aborted');
    span.setStatus({ code: SpanStatusCode.ERROR });
  }
  span.end();
}

type StatementSpan = <T>(text: string, run: () => Promise<T>) => Promise<T>;

class TracedDialect implements Dialect {
  constructor(
    private readonly inner: Dialect,
    private readonly statement: StatementSpan,
  ) {}

  createAdapter() {
    return this.inner.createAdapter();
  }

  createDriver(): Driver {
    return new TracedDriver(this.inner.createDriver(), this.statement);
  }

  createQueryCompiler(): QueryCompiler {
    return this.inner.createQueryCompiler();
  }

  createIntrospector(db: Parameters<Dialect['createIntrospector']>[0]) {
    return this.inner.createIntrospector(db);
  }
}

class TracedConnection implements DatabaseConnection {
  constructor(
    readonly inner: DatabaseConnection,
    private readonly statement: StatementSpan,
  ) {}

  executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
    return this.statement(query.sql, () => this.inner.executeQuery<R>(query));
  }

  /** Not used by the gateway: not traced. */
  streamQuery<R>(query: CompiledQuery, chunkSize?: number): AsyncIterableIterator<QueryResult<R>> {
    return this.inner.streamQuery<R>(query, chunkSize);
  }
}

const innerOf = (connection: DatabaseConnection) => (connection as TracedConnection).inner;

/**
 * The dialect's driver, its connections wrapped. Transaction control goes to the inner driver with
 * the inner connection (drivers call private members on it), in a span of its own.
 */
class TracedDriver implements Driver {
  /** One wrapper per connection: Kysely patches each new connection object it is handed. */
  private readonly wrappers = new WeakMap<DatabaseConnection, TracedConnection>();

  constructor(
    private readonly inner: Driver,
    private readonly statement: StatementSpan,
  ) {}

  init() {
    return this.inner.init();
  }

  async acquireConnection(): Promise<DatabaseConnection> {
    const connection = await this.inner.acquireConnection();
    let wrapper = this.wrappers.get(connection);
    if (!wrapper) this.wrappers.set(connection, (wrapper = new TracedConnection(connection, this.statement)));
    return wrapper;
  }

  beginTransaction(connection: DatabaseConnection, settings: TransactionSettings) {
    const text =
      settings.isolationLevel || settings.accessMode
        ? ['start transaction', settings.isolationLevel && `isolation level ${settings.isolationLevel}`, settings.accessMode].filter(Boolean).join(' ')
        : 'begin';
    return this.statement(text, () => this.inner.beginTransaction(innerOf(connection), settings));
  }

  commitTransaction(connection: DatabaseConnection) {
    return this.statement('commit', () => this.inner.commitTransaction(innerOf(connection)));
  }

  rollbackTransaction(connection: DatabaseConnection) {
    return this.statement('rollback', () => this.inner.rollbackTransaction(innerOf(connection)));
  }

  async savepoint(connection: DatabaseConnection, name: string, compile: Parameters<NonNullable<Driver['savepoint']>>[2]) {
    if (!this.inner.savepoint) throw new Error('savepoints are not supported by this driver');
    return this.statement('savepoint', () => this.inner.savepoint!(innerOf(connection), name, compile));
  }

  async rollbackToSavepoint(connection: DatabaseConnection, name: string, compile: Parameters<NonNullable<Driver['rollbackToSavepoint']>>[2]) {
    if (!this.inner.rollbackToSavepoint) throw new Error('savepoints are not supported by this driver');
    return this.statement('rollback to savepoint', () => this.inner.rollbackToSavepoint!(innerOf(connection), name, compile));
  }

  async releaseSavepoint(connection: DatabaseConnection, name: string, compile: Parameters<NonNullable<Driver['releaseSavepoint']>>[2]) {
    if (!this.inner.releaseSavepoint) throw new Error('savepoints are not supported by this driver');
    return this.statement('release savepoint', () => this.inner.releaseSavepoint!(innerOf(connection), name, compile));
  }

  releaseConnection(connection: DatabaseConnection) {
    return this.inner.releaseConnection(innerOf(connection));
  }

  destroy() {
    return this.inner.destroy();
  }
}
