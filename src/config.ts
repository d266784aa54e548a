/** Environment → typed Config, read once at start and passed down. */
import { loadTrustedDocuments, type TrustedDocuments, type TrustedDocumentsMode } from './graphql/trusted-documents.js';

export interface QuotaSettings {
  maxNamespaces: number;
  maxKeysPerNamespace: number;
  maxBytes: number;
  maxValueBytes: number;
  maxMetadataBytes: number;
}

export interface Limits {
  maxKeyLength: number;
  minTtlSeconds: number;
  maxTtlSeconds: number;
  maxBulkItems: number;
  maxBulkBytes: number;
  /** commit: most operations, most checks, most bytes of values and metadata (contract, "Transactions: commit"). */
  maxCommitOperations: number;
  maxCommitChecks: number;
  maxCommitBytes: number;
  maxKeysPerRead: number;
  maxPageSize: number;
  defaultPageSize: number;
  /** Expired records removed per write by the opportunistic sweep. */
  sweepBatch: number;
  /** How long the audit log keeps an event; writes remove older ones in bounded batches. */
  auditRetentionSeconds: number;
  /** How long the change feed keeps a change; writes remove older ones in bounded batches. */
  changesRetentionSeconds: number;
  /** Most changes one page of the feed reads past its cursor, whatever its filters match. */
  changesScanWindow: number;
  /** Change-feed subscriptions one install may hold open on one gateway instance at once. */
  maxSubscriptionsPerInstall: number;
  /** Concurrent writes of one install combined into one call: at most this many requests and bytes. */
  combine: { maxRequests: number; maxBytes: number; maxWaitMs: number };
}

export interface Config {
  env: 'production' | 'development' | 'test';
  port: number;
  host: string;
  databaseUrl: string | undefined;
  /**
   * DATABASE_DIRECT_URL: a session on PostgreSQL itself (not through a transaction-pooling
   * PgBouncer) for what needs one: the change feed's LISTEN connection and migrations' session lock.
   * Defaults to DATABASE_URL; required when db.poolMode is 'transaction'.
   */
  databaseDirectUrl: string | undefined;
  pgliteDir: string;
  jwtSecret: string | undefined;
  /** True when no secret was given outside production: a secret is generated and demo tokens printed. */
  devMode: boolean;
  runnerTokens: string[];
  limits: Limits;
  quotaDefaults: QuotaSettings;
  /**
   * Per install: a token bucket charged by each request's priced cost (units per second and burst),
   * and a bound on requests in flight (0: none), beyond which requests wait up to inflightWaitMs.
   */
  rateLimit: { perSecond: number; burst: number; maxInflight: number; inflightWaitMs: number; redis: RedisRateLimitSettings | undefined };
  /** Worst-case pricing before execution and the response budget during it (src/graphql/cost.ts, work.ts). */
  cost: { maxStatements: number; maxRecords: number; maxResponseBytes: number };
  corsOrigins: string[];
  maxBodyBytes: number;
  graphiql: boolean;
  /** Requests for the GraphiQL page per client address (token bucket); the whole server allows 10x. */
  graphiqlRateLimit: { perSecond: number; burst: number };
  /** STORAGE_MAX_TOKEN_LIFETIME_SECONDS: the most seconds a JWT may have between iat and exp. */
  maxTokenLifetimeSeconds: number;
  /** Turns the extension doors (extension tokens, Runner) off; admins keep working. */
  extensionDoorsDisabled: boolean;
  /**
   * poolMode (DATABASE_POOL_MODE): 'transaction' when DATABASE_URL is a PgBouncer in transaction
   * pooling mode; the pool then keeps no session state (src/db/database.ts).
   */
  db: { poolMax: number; statementTimeoutMs: number; connectionTimeoutMs: number; poolMode: 'session' | 'transaction' };
  graphqlLimits: { maxDepth: number; maxAliases: number; maxTokens: number; maxDirectives: number };
  /**
   * Trusted documents (src/graphql/trusted-documents.ts): STORAGE_TRUSTED_DOCUMENTS (allow | require)
   * and the known documents: the typed client's plus STORAGE_TRUSTED_DOCUMENTS_FILE (comma-separated paths).
   */
  trustedDocuments: { mode: TrustedDocumentsMode; documents: TrustedDocuments };
  metricsInstallLabels: boolean;
  /** How long a gateway reuses an install lookup; a change made through another instance shows within it. */
  installCacheMs: number;
  logLevel: string;
  /**
   * OpenTelemetry tracing (src/tracing): set when OTEL_EXPORTER_OTLP_ENDPOINT is, spans then go to
   * `${endpoint}/v1/traces` (OTLP over HTTP, protobuf). Unset: no SDK is loaded and no span is made.
   */
  tracing: { endpoint: string; serviceName: string } | undefined;
}

/**
 * REDIS_URL set: the per-install token bucket is shared by every instance through Redis
 * (src/http/shared-rate-limit.ts). `failure`: what a request meets while Redis cannot answer.
 */
export interface RedisRateLimitSettings {
  url: string;
  /** open: this instance's own bucket decides (the limit is per instance again); closed: 503 UNAVAILABLE. */
  failure: 'open' | 'closed';
  /** Prefix of every key the limiter writes (STORAGE_RATE_LIMIT_REDIS_PREFIX), so deployments can share a Redis. */
  keyPrefix: string;
}

export class ConfigError extends Error {}

function redisRateLimit(env: Env): RedisRateLimitSettings | undefined {
  const url = env.REDIS_URL?.trim();
  const rawFailure = env.STORAGE_RATE_LIMIT_REDIS_FAILURE?.trim().toLowerCase() || 'open';
  if (rawFailure !== 'open' && rawFailure !== 'closed') {
    throw new ConfigError(`STORAGE_RATE_LIMIT_REDIS_FAILURE must be open or closed, got "${env.STORAGE_RATE_LIMIT_REDIS_FAILURE}"`);
  }
  if (!url) return undefined;
  // The value is not repeated in the message: a URL may carry a password.
  if (!URL.canParse(url) || !['redis:', 'rediss:'].includes(new URL(url).protocol)) {
    throw new ConfigError('REDIS_URL must be a redis:// or rediss:// URL like redis://127.0.0.1:6379/0');
  }
  return { url, failure: rawFailure, keyPrefix: env.STORAGE_RATE_LIMIT_REDIS_PREFIX?.trim() || 'ext_storage:rl' };
}

type Env = Record<string, string | undefined>;

function trustedDocumentsSettings(env: Env): Config['trustedDocuments'] {
  const mode = env.STORAGE_TRUSTED_DOCUMENTS?.trim().toLowerCase() || 'allow';
  if (mode !== 'allow' && mode !== 'require') {
    throw new ConfigError(`STORAGE_TRUSTED_DOCUMENTS must be allow or require, got "${env.STORAGE_TRUSTED_DOCUMENTS}"`);
  }
  try {
    return { mode, documents: loadTrustedDocuments(list(env, 'STORAGE_TRUSTED_DOCUMENTS_FILE')) };
  } catch (error) {
    throw new ConfigError((error as Error).message);
  }
}

function int(env: Env, name: string, fallback: number, min = 0): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < min) {
    throw new ConfigError(`${name} must be an integer >= ${min}, got "${raw}"`);
  }
  return n;
}

function bool(env: Env, name: string, fallback: boolean): boolean {
  const raw = env[name]?.trim().toLowerCase();
  if (raw === undefined || raw === '') return fallback;
  if (['1', 'true', 'yes', 'on'].includes(raw)) return true;
  if (['0', 'false', 'no', 'off'].includes(raw)) return false;
  throw new ConfigError(`${name} must be true or false, got "${env[name]}"`);
}

function list(env: Env, name: string): string[] {
  return (env[name] ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

export const DEFAULT_QUOTAS: QuotaSettings = {
  maxNamespaces: 32,
  maxKeysPerNamespace: 5120,
  maxBytes: 256 * 1024 * 1024,
  maxValueBytes: 65536,
  maxMetadataBytes: 4096,
};

/** OTEL_EXPORTER_OTLP_ENDPOINT (the collector's base URL, as the OpenTelemetry specification names it) and OTEL_SERVICE_NAME. */
function tracingSettings(env: Env): Config['tracing'] {
  const raw = env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim();
  if (!raw) return undefined;
  // The value is not repeated in the message: a URL may carry credentials.
  const url = URL.canParse(raw) ? new URL(raw) : undefined;
  if (url?.protocol !== 'http:' && url?.protocol !== 'https:') {
    throw new ConfigError('OTEL_EXPORTER_OTLP_ENDPOINT must be an http(s) URL like http://collector:4318');
  }
  return { endpoint: raw.replace(/\/+$/, ''), serviceName: env.OTEL_SERVICE_NAME?.trim() || 'ext-storage-gateway' };
}

export function loadConfig(env: Env = process.env): Config {
  const nodeEnv = env.NODE_ENV === 'production' ? 'production' : env.NODE_ENV === 'test' ? 'test' : 'development';
  const jwtSecret = env.STORAGE_JWT_SECRET && env.STORAGE_JWT_SECRET.length > 0 ? env.STORAGE_JWT_SECRET : undefined;
  if (nodeEnv === 'production' && !jwtSecret) {
    throw new ConfigError(
      'STORAGE_JWT_SECRET is not set and NODE_ENV=production: refusing to start without a token secret',
    );
  }
  if (jwtSecret && jwtSecret.length < 32 && nodeEnv === 'production') {
    throw new ConfigError('STORAGE_JWT_SECRET must be at least 32 characters in production');
  }
  const minTtl = int(env, 'STORAGE_MIN_TTL_SECONDS', 60, 1);
  const maxTtl = int(env, 'STORAGE_MAX_TTL_SECONDS', 2_592_000, 1);
  if (maxTtl < minTtl) throw new ConfigError('STORAGE_MAX_TTL_SECONDS must be >= STORAGE_MIN_TTL_SECONDS');
  const connectionTimeoutMs = int(env, 'STORAGE_DB_CONNECTION_TIMEOUT_MS', 2000, 0);
  const databaseUrl = env.DATABASE_URL?.trim() || undefined;
  const databaseDirectUrl = env.DATABASE_DIRECT_URL?.trim() || undefined;
  const poolMode = env.DATABASE_POOL_MODE?.trim() || 'session';
  if (poolMode !== 'session' && poolMode !== 'transaction') {
    throw new ConfigError('DATABASE_POOL_MODE must be session or transaction');
  }
  if (poolMode === 'transaction' && (!databaseUrl || !databaseDirectUrl)) {
    // Through a transaction pooler LISTEN hears nothing and a session lock outlives its owner.
    throw new ConfigError('DATABASE_POOL_MODE=transaction needs DATABASE_URL (the pooler) and DATABASE_DIRECT_URL (PostgreSQL itself, for LISTEN and migrations)');
  }
  const corsOrigins = list(env, 'STORAGE_CORS_ORIGINS');
  for (const origin of corsOrigins) {
    if (origin === '*' || !/^https?:\/\/[^/]+$/.test(origin)) {
      throw new ConfigError(`STORAGE_CORS_ORIGINS: "${origin}" is not an origin like https://app.example.com (no wildcard)`);
    }
  }
  return {
    env: nodeEnv,
    port: int(env, 'PORT', 4000),
    host: env.HOST?.trim() || '127.0.0.1',
    databaseUrl,
    databaseDirectUrl,
    pgliteDir: env.PGLITE_DIR?.trim() || './.data/pglite',
    jwtSecret,
    devMode: !jwtSecret && nodeEnv !== 'production',
    runnerTokens: list(env, 'RUNNER_AUTH_TOKENS'),
    limits: {
      maxKeyLength: 256,
      minTtlSeconds: minTtl,
      maxTtlSeconds: maxTtl,
      maxBulkItems: int(env, 'STORAGE_MAX_BULK_ITEMS', 100, 1),
      maxBulkBytes: int(env, 'STORAGE_MAX_BULK_BYTES', 1024 * 1024, 1),
      maxCommitOperations: int(env, 'STORAGE_MAX_COMMIT_OPERATIONS', 100, 1),
      maxCommitChecks: int(env, 'STORAGE_MAX_COMMIT_CHECKS', 100, 0),
      maxCommitBytes: int(env, 'STORAGE_MAX_COMMIT_BYTES', 1024 * 1024, 1),
      maxKeysPerRead: int(env, 'STORAGE_MAX_KEYS_PER_READ', 100, 1),
      maxPageSize: 100,
      defaultPageSize: 25,
      // Small: a write pays for its sweep, and expired records cost nothing while they wait (issue 10).
      sweepBatch: int(env, 'STORAGE_TTL_SWEEP_BATCH', 10, 0),
      auditRetentionSeconds: int(env, 'STORAGE_AUDIT_RETENTION_SECONDS', 7_776_000, 1),
      changesRetentionSeconds: int(env, 'STORAGE_CHANGES_RETENTION_SECONDS', 604_800, 1),
      changesScanWindow: 10_000,
      maxSubscriptionsPerInstall: int(env, 'STORAGE_MAX_SUBSCRIPTIONS_PER_INSTALL', 32, 1),
      // Concurrent writes of one install share a call and a commit (src/storage/write-combiner.ts).
      combine: {
        maxRequests: int(env, 'STORAGE_WRITE_COMBINE_MAX', 32, 1),
        maxBytes: int(env, 'STORAGE_WRITE_COMBINE_MAX_BYTES', 4 * 1024 * 1024, 1024),
        // Waiting behind an install's call is bounded like waiting for a pooled connection.
        maxWaitMs: connectionTimeoutMs,
      },
    },
    quotaDefaults: {
      maxNamespaces: int(env, 'STORAGE_QUOTA_NAMESPACES', DEFAULT_QUOTAS.maxNamespaces, 1),
      maxKeysPerNamespace: int(env, 'STORAGE_QUOTA_KEYS_PER_NAMESPACE', DEFAULT_QUOTAS.maxKeysPerNamespace, 1),
      maxBytes: int(env, 'STORAGE_QUOTA_BYTES', DEFAULT_QUOTAS.maxBytes, 1),
      maxValueBytes: int(env, 'STORAGE_MAX_VALUE_BYTES', DEFAULT_QUOTAS.maxValueBytes, 1),
      maxMetadataBytes: int(env, 'STORAGE_MAX_METADATA_BYTES', DEFAULT_QUOTAS.maxMetadataBytes, 1),
    },
    rateLimit: {
      perSecond: int(env, 'STORAGE_RATE_LIMIT_PER_SECOND', 200),
      burst: int(env, 'STORAGE_RATE_LIMIT_BURST', 400),
      maxInflight: int(env, 'STORAGE_MAX_INFLIGHT_PER_INSTALL', 8),
      inflightWaitMs: int(env, 'STORAGE_INFLIGHT_WAIT_MS', 5000),
      redis: redisRateLimit(env),
    },
    cost: {
      maxStatements: int(env, 'STORAGE_MAX_STATEMENTS_PER_REQUEST', 64, 1),
      maxRecords: int(env, 'STORAGE_MAX_RECORDS_PER_REQUEST', 1000, 1),
      maxResponseBytes: int(env, 'STORAGE_MAX_RESPONSE_BYTES', 16 * 1024 * 1024, 1024),
    },
    corsOrigins,
    maxBodyBytes: int(env, 'STORAGE_MAX_BODY_BYTES', 4 * 1024 * 1024, 1024),
    graphiql: bool(env, 'STORAGE_GRAPHIQL', true),
    graphiqlRateLimit: {
      perSecond: int(env, 'STORAGE_GRAPHIQL_RATE_LIMIT_PER_SECOND', 2),
      burst: int(env, 'STORAGE_GRAPHIQL_RATE_LIMIT_BURST', 20),
    },
    maxTokenLifetimeSeconds: int(env, 'STORAGE_MAX_TOKEN_LIFETIME_SECONDS', 86_400, 60),
    extensionDoorsDisabled: bool(env, 'STORAGE_EXTENSION_DOORS_DISABLED', false),
    db: {
      poolMax: int(env, 'STORAGE_DB_POOL_MAX', 20, 1),
      statementTimeoutMs: int(env, 'STORAGE_DB_STATEMENT_TIMEOUT_MS', 5000, 0),
      connectionTimeoutMs,
      poolMode,
    },
    graphqlLimits: {
      maxDepth: int(env, 'STORAGE_GRAPHQL_MAX_DEPTH', 12, 1),
      maxAliases: int(env, 'STORAGE_GRAPHQL_MAX_ALIASES', 30, 1),
      maxTokens: int(env, 'STORAGE_GRAPHQL_MAX_TOKENS', 2000, 1),
      maxDirectives: int(env, 'STORAGE_GRAPHQL_MAX_DIRECTIVES', 20, 1),
    },
    trustedDocuments: trustedDocumentsSettings(env),
    metricsInstallLabels: bool(env, 'STORAGE_METRICS_INSTALL_LABELS', false),
    installCacheMs: int(env, 'STORAGE_INSTALL_CACHE_MS', 1000),
    logLevel: env.LOG_LEVEL?.trim() || (nodeEnv === 'test' ? 'silent' : 'info'),
    tracing: tracingSettings(env),
  };
}
