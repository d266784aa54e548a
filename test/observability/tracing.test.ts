/**
 * OpenTelemetry tracing (src/tracing): off, nothing is loaded or made; on (spans to an in-memory
 * exporter through the tests' seam), a put's spans form HTTP → GraphQL operation → SQL statement,
 * parented on the incoming traceparent, and carry no user data.
 *
 * The order of the suites matters: starting tracing registers the SDK for the rest of the process.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import { context, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import type { InMemorySpanExporter, ReadableSpan } from '@opentelemetry/sdk-trace-node';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';
import { RUNNER_PATH } from '../../src/http/runner-protocol.js';
import { WriteCombiner } from '../../src/storage/write-combiner.js';
import { startTracing, tracing } from '../../src/tracing/index.js';
import { startTestApp, type TestApp, type TestInstall } from '../support/app.js';

const PUT = `mutation Put($input: PutRecordInput!) { putRecord(input: $input) { __typename ... on PutRecordSuccess { record { key revision } } } }`;

/** True once the OpenTelemetry SDK (CommonJS) has been loaded into this process. */
const sdkLoaded = () => Object.keys(createRequire(import.meta.url).cache).some((path) => path.includes('@opentelemetry/sdk-trace'));

const newTraceparent = () => {
  const traceId = randomBytes(16).toString('hex');
  const spanId = randomBytes(8).toString('hex');
  return { traceId, spanId, header: `00-${traceId}-${spanId}-01` };
};

/** One request of ext_storage_write_v1 (as test/records/write-combining.test.ts sends them). */
function combinerRequest(key: string, valueBytes: number | string): string {
  return JSON.stringify({
    operation: 'put',
    actor: 'tracing-test',
    requestId: null,
    sweep: 0,
    auditRetentionSeconds: 86_400,
    quota: { namespaces: 10, keys: 100, bytes: 1_000_000 },
    schemas: [],
    invalid: false,
    ops: [{ kind: 'put', namespace: 'direct', key, ifRevision: null, value: 1, metadata: {}, valueBytes, metadataBytes: 2, ttlSeconds: null, schemaVersion: null }],
  });
}

describe('tracing configuration', () => {
  it('is off without OTEL_EXPORTER_OTLP_ENDPOINT; on with it, the service name defaulted', () => {
    expect(loadConfig({ NODE_ENV: 'test' }).tracing).toBeUndefined();
    expect(loadConfig({ NODE_ENV: 'test', OTEL_EXPORTER_OTLP_ENDPOINT: ' ' }).tracing).toBeUndefined();
    expect(loadConfig({ NODE_ENV: 'test', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/' }).tracing).toEqual({
      endpoint: 'http://collector:4318',
      serviceName: 'ext-storage-gateway',
    });
    expect(loadConfig({ NODE_ENV: 'test', OTEL_EXPORTER_OTLP_ENDPOINT: 'https://otel.example', OTEL_SERVICE_NAME: 'gw-eu' }).tracing?.serviceName).toBe('gw-eu');
  });

  it('refuses an endpoint that is not an http(s) URL, without repeating it (it may carry credentials)', () => {
    for (const bad of ['collector:4318', 'grpc://user:hunter2@collector:4317', 'not a url']) {
      let error: unknown;
      try {
        loadConfig({ NODE_ENV: 'test', OTEL_EXPORTER_OTLP_ENDPOINT: bad });
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as Error).message).toMatch(/^OTEL_EXPORTER_OTLP_ENDPOINT must be an http\(s\) URL/);
      expect((error as Error).message).not.toContain('hunter2');
    }
  });
});

describe('tracing off (OTEL_EXPORTER_OTLP_ENDPOINT unset)', () => {
  let t: TestApp;
  beforeAll(async () => {
    const config = loadConfig({ NODE_ENV: 'test' });
    expect(await startTracing(config.tracing)).toBeUndefined();
    t = await startTestApp();
  });
  afterAll(async () => {
    await t?.close();
  });

  it('costs nothing: no SDK loaded, no tracer provider registered, nothing installed; requests work as before', async () => {
    const install = await t.createInstall();
    const { header } = newTraceparent();
    const res = await t.gql(PUT, { input: { namespace: 'n', key: 'k', value: 1 } }, { token: await install.token(), headers: { traceparent: header } });
    expect(res.body.data.putRecord.__typename).toBe('PutRecordSuccess');
    // The app, the database and the write combiner read this once: nothing of tracing is installed.
    expect(tracing()).toBeUndefined();
    expect(sdkLoaded()).toBe(false);
    // The API alone (no SDK) answers with non-recording spans of no trace.
    const span = trace.getTracer('probe').startSpan('probe');
    expect(span.isRecording()).toBe(false);
    expect(trace.isSpanContextValid(span.spanContext())).toBe(false);
    // Nothing answers with trace context either.
    expect(res.headers.get('traceparent')).toBeNull();
  });
});

describe('tracing on (spans to an in-memory exporter)', () => {
  let t: TestApp;
  let exporter: InMemorySpanExporter;
  let install: TestInstall;
  beforeAll(async () => {
    const sdk = await import('@opentelemetry/sdk-trace-node');
    exporter = new sdk.InMemorySpanExporter();
    const config = loadConfig({ NODE_ENV: 'test', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318', OTEL_SERVICE_NAME: 'tracing-test' });
    const started = await startTracing(config.tracing, { exporter });
    expect(started).toBe(tracing());
    expect(sdkLoaded()).toBe(true);
    t = await startTestApp();
    install = await t.createInstall();
  });
  afterAll(async () => {
    await t?.close();
    await tracing()?.shutdown();
  });

  /** The spans of one trace, once its HTTP server span has ended (it ends when the response is closed). */
  async function traceOf(traceId: string): Promise<ReadableSpan[]> {
    await vi.waitFor(() => {
      expect(exporter.getFinishedSpans().some((s) => s.spanContext().traceId === traceId && s.kind === SpanKind.SERVER)).toBe(true);
    });
    return exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId);
  }

  const parentOf = (span: ReadableSpan) => span.parentSpanContext?.spanId;
  const byId = (spans: ReadableSpan[]) => new Map(spans.map((s) => [s.spanContext().spanId, s]));
  const descendsFrom = (span: ReadableSpan, ancestorId: string, spans: Map<string, ReadableSpan>) => {
    for (let p = parentOf(span); p !== undefined; p = spans.get(p) && parentOf(spans.get(p)!)) if (p === ancestorId) return true;
    return false;
  };

  it('a put: HTTP span on the incoming traceparent → GraphQL operation → SQL statements, with no user data', async () => {
    exporter.reset();
    const incoming = newTraceparent();
    const secret = `secret-${randomUUID()}`;
    const key = `key-${randomUUID()}`;
    const res = await t.gql(
      PUT,
      { input: { namespace: 'prefs', key, value: { secret }, metadata: { note: secret } } },
      { token: await install.token(), headers: { traceparent: incoming.header, 'x-request-id': 'trace-test-put' } },
    );
    expect(res.body.data.putRecord.__typename).toBe('PutRecordSuccess');
    const spans = await traceOf(incoming.traceId);
    // No span of the request fell out of its trace (no root SQL span, no second trace).
    expect(exporter.getFinishedSpans().filter((s) => s.spanContext().traceId !== incoming.traceId)).toEqual([]);

    const http = spans.filter((s) => s.kind === SpanKind.SERVER);
    expect(http).toHaveLength(1);
    const [server] = http;
    expect(server!.name).toBe('POST /graphql');
    expect(server!.parentSpanContext?.spanId).toBe(incoming.spanId);
    expect(server!.parentSpanContext?.isRemote).toBe(true);
    expect(server!.attributes).toMatchObject({
      'http.request.method': 'POST',
      'http.route': '/graphql',
      'http.response.status_code': 200,
      'url.path': '/graphql',
      'ext_storage.request_id': 'trace-test-put',
    });
    expect(server!.resource.attributes['service.name']).toBe('tracing-test');

    const operations = spans.filter((s) => s.attributes['graphql.operation.type'] !== undefined);
    expect(operations).toHaveLength(1);
    const [operation] = operations;
    expect(operation!.name).toBe('mutation Put');
    expect(operation!.attributes).toMatchObject({ 'graphql.operation.type': 'mutation', 'graphql.operation.name': 'Put' });
    expect(parentOf(operation!)).toBe(server!.spanContext().spanId);

    const statements = spans.filter((s) => s.kind === SpanKind.CLIENT);
    const index = byId(spans);
    expect(statements.length).toBeGreaterThan(0);
    for (const s of statements) {
      expect(s.attributes['db.system']).toBe('postgresql');
      expect(s.attributes['db.system.name']).toBe('postgresql');
      expect(typeof s.attributes['db.query.text']).toBe('string');
      expect(descendsFrom(s, server!.spanContext().spanId, index)).toBe(true);
    }
    // The write itself: its parameterised text, beneath the operation.
    const write = statements.find((s) => String(s.attributes['db.query.text']).includes('ext_storage_write_v1('));
    expect(write, statements.map((s) => s.attributes['db.query.text']).join('\n')).toBeDefined();
    expect(write!.attributes['db.query.text']).toContain('$3');
    expect(write!.name).toBe('SELECT');
    expect(descendsFrom(write!, operation!.spanContext().spanId, index)).toBe(true);

    for (const s of spans) {
      expect(s.status.code, s.name).not.toBe(SpanStatusCode.ERROR);
      expect(s.spanContext().traceId).toBe(incoming.traceId);
    }
    // Parameter values (the value, the metadata, the key) are nowhere in what was recorded.
    const recorded = JSON.stringify(spans.map((s) => ({ name: s.name, attributes: s.attributes, events: s.events, links: s.links })));
    expect(recorded).not.toContain(secret);
    expect(recorded).not.toContain(key);
  });

  it('a request without traceparent starts a new trace; a read through Yoga’s own path (GET) has the same tree', async () => {
    exporter.reset();
    const res = await fetch(`${t.url}/graphql?query=${encodeURIComponent('query Who { install { id } }')}`, {
      headers: { authorization: `Bearer ${await install.token()}`, accept: 'application/json' },
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { data: { install: { id: string } } };
    expect(body.data.install.id).toBe(install.id);
    await vi.waitFor(() => expect(exporter.getFinishedSpans().some((s) => s.kind === SpanKind.SERVER)).toBe(true));
    const spans = exporter.getFinishedSpans();
    const server = spans.find((s) => s.kind === SpanKind.SERVER)!;
    expect(server.parentSpanContext).toBeUndefined();
    expect(trace.isSpanContextValid(server.spanContext())).toBe(true);
    expect(server.attributes['http.request.method']).toBe('GET');
    expect(server.attributes['http.response.status_code']).toBe(200);
    const operation = spans.find((s) => s.attributes['graphql.operation.type'] === 'query')!;
    expect(operation.name).toBe('query Who');
    expect(parentOf(operation)).toBe(server.spanContext().spanId);
    for (const s of spans) expect(s.spanContext().traceId).toBe(server.spanContext().traceId);
  });

  it('a refused request (401) still has its HTTP span, status code 401, and no operation span', async () => {
    exporter.reset();
    const incoming = newTraceparent();
    const res = await t.gql(PUT, { input: { namespace: 'n', key: 'k', value: 1 } }, { token: 'not-a-token', headers: { traceparent: incoming.header } });
    expect(res.status).toBe(401);
    const spans = await traceOf(incoming.traceId);
    expect(spans).toHaveLength(1);
    const [server] = spans;
    expect(server!.parentSpanContext?.spanId).toBe(incoming.spanId);
    expect(server!.attributes['http.response.status_code']).toBe(401);
    expect(server!.attributes['http.route']).toBe('/graphql');
    // A 4xx is the caller's error, not the server's (OpenTelemetry's HTTP server conventions).
    expect(server!.status.code).toBe(SpanStatusCode.UNSET);
  });

  it('an incoming traceparent that is not sampled: nothing is recorded', async () => {
    exporter.reset();
    const incoming = newTraceparent();
    const res = await t.gql(PUT, { input: { namespace: 'n', key: 'unsampled', value: 1 } }, {
      token: await install.token(),
      headers: { traceparent: incoming.header.replace(/-01$/, '-00') },
    });
    expect(res.body.data.putRecord.__typename).toBe('PutRecordSuccess');
    // A sampled request after it, to know the first one's spans would have been exported by then.
    const after = newTraceparent();
    await t.gql(PUT, { input: { namespace: 'n', key: 'sampled', value: 1 } }, { token: await install.token(), headers: { traceparent: after.header } });
    await traceOf(after.traceId);
    expect(exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === incoming.traceId)).toEqual([]);
  });

  it('probes and scrapes make no spans; an unknown path has an HTTP span without a route', async () => {
    exporter.reset();
    const incoming = newTraceparent();
    for (const path of ['/healthz', '/readyz', '/metrics']) {
      const res = await fetch(`${t.url}${path}`, { headers: { traceparent: incoming.header } });
      expect(res.status).toBe(200);
      await res.arrayBuffer();
    }
    const res = await fetch(`${t.url}/nowhere?x=1`, { headers: { traceparent: incoming.header } });
    expect(res.status).toBe(404);
    await res.arrayBuffer();
    const spans = await traceOf(incoming.traceId);
    expect(exporter.getFinishedSpans()).toHaveLength(1);
    expect(spans[0]!.name).toBe('GET');
    expect(spans[0]!.attributes['url.path']).toBe('/nowhere');
    expect(spans[0]!.attributes['http.route']).toBeUndefined();
    expect(spans[0]!.attributes['http.response.status_code']).toBe(404);
  });

  it('the Runner REST door: HTTP span with its route template, SQL spans beneath it', async () => {
    exporter.reset();
    const incoming = newTraceparent();
    const res = await fetch(`${t.url}${RUNNER_PATH}${install.id}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-runner-auth': t.runnerToken, traceparent: incoming.header },
      body: JSON.stringify({ operation: 'put', namespace: 'runner', key: 'k', value: { secret: 'runner-secret-value' } }),
    });
    expect(res.status).toBe(200);
    await res.arrayBuffer();
    const spans = await traceOf(incoming.traceId);
    const server = spans.find((s) => s.kind === SpanKind.SERVER)!;
    expect(server.name).toBe(`POST ${RUNNER_PATH}{installId}`);
    expect(server.attributes['http.route']).toBe(`${RUNNER_PATH}{installId}`);
    expect(server.parentSpanContext?.spanId).toBe(incoming.spanId);
    const statements = spans.filter((s) => s.kind === SpanKind.CLIENT);
    expect(statements.some((s) => String(s.attributes['db.query.text']).includes('ext_storage_write_v1('))).toBe(true);
    const index = byId(spans);
    for (const s of statements) expect(descendsFrom(s, server.spanContext().spanId, index)).toBe(true);
    expect(JSON.stringify(spans.map((s) => s.attributes))).not.toContain('runner-secret-value');
  });

  it('combined writes: a call runs in the trace context of the request that runs it, never of one that has finished', async () => {
    exporter.reset();
    const tracer = trace.getTracer('tracing-test');
    const combiner = new WriteCombiner(t.database.handle.db, { maxRequests: 32, maxBytes: 1 << 20, maxWaitMs: 0 });
    // Four requests, each with a span of its own: the first write goes alone; the three others wait
    // for it and go as one batch (run by the second request), which the database refuses (a byte
    // count that is not a number), so each is then sent alone, in its own request's context.
    const requests = ['a', 'b', 'bad', 'c'].map((key) => ({ key, span: tracer.startSpan(`request ${key}`) }));
    const answers = await Promise.allSettled(
      requests.map(({ key, span }) =>
        context.with(trace.setSpan(ROOT_CONTEXT, span), () =>
          combiner.write(install.tenantId, install.id, combinerRequest(key, key === 'bad' ? 'not a number' : 1)),
        ).finally(() => span.end()),
      ),
    );
    expect(answers.map((a) => a.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
    const spans = exporter.getFinishedSpans();
    const calls = spans.filter((s) => /ext_storage_write(_batch)?_v1\(/.test(String(s.attributes['db.query.text'])));
    const parentName = (s: ReadableSpan) => spans.find((p) => p.spanContext().spanId === parentOf(s))?.name;
    expect(calls.map((s) => [String(s.attributes['db.query.text']).includes('batch') ? 'batch' : 'single', parentName(s)])).toEqual([
      ['single', 'request a'],
      ['batch', 'request b'],
      ['single', 'request b'],
      ['single', 'request bad'],
      ['single', 'request c'],
    ]);
    // The refused batch and the faulty request alone: errors, with their SQLSTATE and no message.
    expect(calls.map((s) => s.status.code)).toEqual([SpanStatusCode.UNSET, SpanStatusCode.ERROR, SpanStatusCode.UNSET, SpanStatusCode.ERROR, SpanStatusCode.UNSET]);
    for (const s of [calls[1]!, calls[3]!]) expect(s.attributes['db.response.status_code']).toMatch(/^[0-9A-Z]{5}$/);
    expect(JSON.stringify(calls.map((s) => s.attributes))).not.toContain('not a number');
    await t.database.assertCountersConsistent();
  });
});
