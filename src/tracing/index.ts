/**
 * OpenTelemetry tracing (issue 13; docs/operations.md, "Tracing"): with OTEL_EXPORTER_OTLP_ENDPOINT
 * set, every HTTP request gets a server span (its parent taken from an incoming W3C `traceparent`),
 * every GraphQL operation a span beneath it, and every SQL statement a span beneath that.
 *
 * This module is the seam and imports nothing of OpenTelemetry at run time: the SDK (./otel.ts) is
 * loaded by a dynamic import only when tracing is started. Unset, `tracing()` stays undefined and
 * nothing is installed: the Yoga plugin is not added, the database dialect is not wrapped, the write
 * combiner captures no context, and a request costs one check of a constant (src/http/server.ts).
 *
 * Process-wide, like OpenTelemetry's own global tracer provider: start it before the database is
 * opened and the app created (src/main.ts), which read it once.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { SpanExporter } from '@opentelemetry/sdk-trace-node';
import type { Plugin } from 'graphql-yoga';
import type { Dialect } from 'kysely';
import type { Config } from '../config.js';
import type { Logger } from '../logger.js';

export interface Tracing {
  /**
   * Runs one request's handling (`handle`, which resolves to the route's name) inside its HTTP
   * server span; the span ends once the response is closed and the handling has settled.
   */
  request(req: IncomingMessage, res: ServerResponse, requestId: string, handle: () => Promise<string>): Promise<string>;
  /** The Yoga plugin making a span per executed GraphQL operation (put it first in the list). */
  readonly graphqlPlugin: Plugin;
  /** The dialect, each SQL statement run through it (transaction control included) in a span of its own. */
  wrapDialect(dialect: Dialect): Dialect;
  /** The active trace context, to run work later in (a combined write: src/storage/write-combiner.ts). */
  captureContext(): <T>(run: () => T) => T;
  /** Ends and flushes every span still buffered (graceful stop). */
  shutdown(): Promise<void>;
}

export interface TracingOptions {
  /** Where the SDK's own problems go (a collector that cannot be reached), at warn level and above. */
  logger?: Logger;
  /** Tests only: spans go to this exporter, one at a time, instead of OTLP to the endpoint. */
  exporter?: SpanExporter;
}

let active: Tracing | undefined;

/** The started tracing, or undefined when OTEL_EXPORTER_OTLP_ENDPOINT is unset. */
export function tracing(): Tracing | undefined {
  return active;
}

/** Starts tracing when configured (loading the SDK); undefined, and nothing loaded, when not. */
export async function startTracing(settings: Config['tracing'], options: TracingOptions = {}): Promise<Tracing | undefined> {
  if (!settings) return undefined;
  if (active) throw new Error('tracing is already started');
  const { createTracing } = await import('./otel.js');
  active = createTracing(settings, options);
  return active;
}
