/** Prometheus metrics (prom-client). No tenant or install labels: cardinality stays bounded. */
import client from 'prom-client';
import type { StorageHooks } from '../storage/storage.js';

export interface Metrics {
  registry: client.Registry;
  storageHooks: StorageHooks;
  graphqlRequests: client.Counter<'operation_type' | 'outcome'>;
  graphqlDuration: client.Histogram<'operation_type'>;
  httpRequests: client.Counter<'route' | 'status'>;
  rateLimited: client.Counter<string>;
  /** REDIS_URL: Redis errors met by the shared rate limit (src/http/shared-rate-limit.ts). */
  rateLimitBackendErrors: client.Counter<'operation'>;
  /** Only with STORAGE_METRICS_INSTALL_LABELS=true: requests per install (one series per install). */
  installRequests: client.Counter<'install_id' | 'status'> | null;
}

/** Default metrics promtool flags (gauges with a counter's suffix); the per-type gauges cover them. */
export const GAUGES_NAMED_TOTAL = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'] as const;

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

export function createMetrics(
  poolStats: () => { total: number; idle: number; waiting: number },
  opts: { installLabels?: boolean } = {},
): Metrics {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry });
  // prom-client's default metrics include three gauges named `_total`, which `promtool check metrics`
  // refuses (the suffix is for counters). Each is the sum of the per-type gauge beside it
  // (`nodejs_active_handles{type}`, …), kept: `sum(nodejs_active_handles)` is the same number.
  for (const name of GAUGES_NAMED_TOTAL) registry.removeSingleMetric(name);
  const operations = new client.Counter({
    name: 'ext_storage_operations_total',
    help: 'Storage operations by operation and outcome (ok or the error code).',
    labelNames: ['operation', 'outcome'] as const,
    registers: [registry],
  });
  const duration = new client.Histogram({
    name: 'ext_storage_operation_duration_seconds',
    help: 'Storage operation latency in the core, database included.',
    labelNames: ['operation'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });
  const bytesWritten = new client.Counter({
    name: 'ext_storage_bytes_written_total',
    help: 'Value and metadata bytes written by successful puts.',
    registers: [registry],
  });
  const quotaRejections = new client.Counter({
    name: 'ext_storage_quota_rejections_total',
    help: 'Writes refused by a quota.',
    labelNames: ['quota'] as const,
    registers: [registry],
  });
  const quotaPressure = new client.Counter({
    name: 'ext_storage_quota_pressure_total',
    help: 'Writes that pushed an install past a fraction (0.8 or 0.95) of a quota.',
    labelNames: ['quota', 'threshold'] as const,
    registers: [registry],
  });
  const validationFailures = new client.Counter({
    name: 'ext_storage_validation_failures_total',
    help: 'Writes refused by a namespace JSON Schema (or an invalid schema document).',
    registers: [registry],
  });
  const ttlDeleted = new client.Counter({
    name: 'ext_storage_ttl_deleted_total',
    help: 'Expired records removed by the opportunistic sweep.',
    registers: [registry],
  });
  const writeCallRequests = new client.Histogram({
    name: 'ext_storage_write_call_requests',
    help: 'Write requests carried by one call of the write function (the per-install combiner: 1 when an install is idle).',
    buckets: [1, 2, 4, 8, 16, 32],
    registers: [registry],
  });
  const writeMerged = new client.Counter({
    name: 'ext_storage_write_merged_requests_total',
    help: 'Write requests applied as part of a merged call (several independent requests of one install as one write).',
    registers: [registry],
  });
  const rateLimited = new client.Counter({
    name: 'ext_storage_rate_limited_total',
    help: 'Requests refused by the per-install rate limit.',
    registers: [registry],
  });
  const rateLimitBackendErrors = new client.Counter({
    name: 'ext_storage_rate_limit_backend_errors_total',
    help: 'Redis errors met by the shared rate limit (operation: take, debit or connection); STORAGE_RATE_LIMIT_REDIS_FAILURE decides what requests meet meanwhile.',
    labelNames: ['operation'] as const,
    registers: [registry],
  });
  const graphqlRequests = new client.Counter({
    name: 'ext_storage_graphql_requests_total',
    help: 'GraphQL requests by operation type and outcome.',
    labelNames: ['operation_type', 'outcome'] as const,
    registers: [registry],
  });
  const graphqlDuration = new client.Histogram({
    name: 'ext_storage_graphql_request_duration_seconds',
    help: 'GraphQL request latency, end to end in the gateway.',
    labelNames: ['operation_type'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });
  const httpRequests = new client.Counter({
    name: 'ext_storage_http_requests_total',
    help: 'HTTP requests by route and status.',
    labelNames: ['route', 'status'] as const,
    registers: [registry],
  });
  for (const [name, help, pick] of [
    ['ext_storage_db_pool_connections', 'Database connections open.', 'total'],
    ['ext_storage_db_pool_idle', 'Database connections idle.', 'idle'],
    ['ext_storage_db_pool_waiting', 'Requests waiting for a database connection.', 'waiting'],
  ] as const) {
    new client.Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(poolStats()[pick]);
      },
    });
  }
  const installRequests = opts.installLabels
    ? new client.Counter({
        name: 'ext_storage_install_requests_total',
        help: 'Extension and Runner requests per install and HTTP status (STORAGE_METRICS_INSTALL_LABELS=true; one series per install).',
        labelNames: ['install_id', 'status'] as const,
        registers: [registry],
      })
    : null;
  return {
    registry,
    installRequests,
    graphqlRequests,
    graphqlDuration,
    httpRequests,
    rateLimited,
    rateLimitBackendErrors,
    storageHooks: {
      onOperation(operation, outcome, seconds) {
        operations.inc({ operation, outcome });
        duration.observe({ operation }, seconds);
      },
      onBytesWritten: (bytes) => bytesWritten.inc(bytes),
      onQuotaRejected: (quota) => quotaRejections.inc({ quota }),
      onQuotaPressure: (quota, threshold) => quotaPressure.inc({ quota, threshold: String(threshold) }),
      onValidationFailed: () => validationFailures.inc(),
      onTtlDeleted: (count) => ttlDeleted.inc(count),
      onWriteCall(requests, merged) {
        writeCallRequests.observe(requests);
        if (merged > 0) writeMerged.inc(merged);
      },
    },
  };
}
