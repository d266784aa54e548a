/** Names, formats and sizes: the checks a write or read passes before touching the database. */
import type { Limits, QuotaSettings } from '../config.js';
import { LimitExceededError } from './errors.js';

const NAMESPACE_RE = /^[a-z0-9][a-z0-9._-]{0,63}$/;
// Control characters U+0000–U+001F and U+007F.
// eslint-disable-next-line no-control-regex
const CONTROL_RE = /[\u0000-\u001f\u007f]/;
/** Nesting deeper than this is refused (PostgreSQL's parser would overflow its stack far later). */
export const MAX_JSON_DEPTH = 64;

const INT4_MAX = 2_147_483_647;

/** Whether a caller's number fits an integer column; a number that does not is unknown, never an SQL error. */
export function fitsInt4(n: number): boolean {
  return Number.isInteger(n) && n >= -INT4_MAX - 1 && n <= INT4_MAX;
}

export function checkNamespace(namespace: string): void {
  if (typeof namespace !== 'string' || !NAMESPACE_RE.test(namespace)) {
    throw new LimitExceededError('namespaceFormat', 'namespace must match ^[a-z0-9][a-z0-9._-]{0,63}$');
  }
}

/** A key's format and length; `what` names it in the message (a listing's prefix is checked as a key). */
export function checkKey(key: string, limits: Pick<Limits, 'maxKeyLength'>, what = 'key'): void {
  if (typeof key !== 'string') throw new LimitExceededError('keyFormat', `${what} must be a string`);
  if (!key.isWellFormed()) throw new LimitExceededError('keyFormat', `${what} contains a lone surrogate`);
  const length = codePointLength(key);
  if (length < 1 || length > limits.maxKeyLength) {
    throw new LimitExceededError('keyLength', `${what} must be 1 to ${limits.maxKeyLength} characters`, limits.maxKeyLength, length);
  }
  if (CONTROL_RE.test(key)) throw new LimitExceededError('keyFormat', `${what} contains a control character`);
}

export function codePointLength(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/** UTF-8 bytes of the compact JSON text. */
export function jsonBytes(value: unknown): number {
  return Buffer.byteLength(JSON.stringify(value), 'utf8');
}

/**
 * Refuses what jsonb cannot hold or JSON cannot say: U+0000 and lone surrogates in strings
 * (keys included), non-finite numbers, non-JSON types, and nesting deeper than MAX_JSON_DEPTH.
 */
export function checkJsonFormat(value: unknown, what: 'value' | 'metadata'): void {
  const stack: Array<[unknown, number]> = [[value, 1]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (v === null || typeof v === 'boolean') continue;
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) throw new LimitExceededError('valueFormat', `${what} contains a non-finite number`);
      continue;
    }
    if (typeof v === 'string') {
      checkJsonString(v, what);
      continue;
    }
    if (typeof v !== 'object') throw new LimitExceededError('valueFormat', `${what} is not JSON`);
    if (depth > MAX_JSON_DEPTH) {
      throw new LimitExceededError('valueFormat', `${what} is nested deeper than ${MAX_JSON_DEPTH} levels`, MAX_JSON_DEPTH);
    }
    if (Array.isArray(v)) {
      for (const item of v) stack.push([item, depth + 1]);
    } else {
      for (const [k, item] of Object.entries(v as Record<string, unknown>)) {
        checkJsonString(k, what);
        stack.push([item, depth + 1]);
      }
    }
  }
}

function checkJsonString(s: string, what: string): void {
  if (s.includes('\u0000')) throw new LimitExceededError('valueFormat', `${what} contains U+0000, which cannot be stored`);
  if (!s.isWellFormed()) throw new LimitExceededError('valueFormat', `${what} contains a lone surrogate, which cannot be stored`);
}

export function isJsonObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export interface CheckedValue {
  value: unknown;
  metadata: Record<string, unknown>;
  valueBytes: number;
  metadataBytes: number;
}

/** Names-and-formats stage for a value and its metadata. */
export function checkValueFormat(value: unknown, metadata: unknown): void {
  if (value === null || value === undefined) {
    throw new LimitExceededError('valueType', 'value must be a JSON value other than null');
  }
  checkJsonFormat(value, 'value');
  if (metadata !== null && metadata !== undefined) {
    if (!isJsonObject(metadata)) throw new LimitExceededError('metadataType', 'metadata must be a JSON object');
    checkJsonFormat(metadata, 'metadata');
  }
}

/** Sizes-and-TTL stage. */
export function checkValueSizes(
  value: unknown,
  metadata: unknown,
  ttlSeconds: number | null | undefined,
  limits: Pick<Limits, 'minTtlSeconds' | 'maxTtlSeconds'>,
  quota: Pick<QuotaSettings, 'maxValueBytes' | 'maxMetadataBytes'>,
): CheckedValue {
  const meta = (metadata ?? {}) as Record<string, unknown>;
  const valueBytes = jsonBytes(value);
  if (valueBytes > quota.maxValueBytes) {
    throw new LimitExceededError('valueBytes', `value is ${valueBytes} bytes; the limit is ${quota.maxValueBytes}`, quota.maxValueBytes, valueBytes);
  }
  const metadataBytes = jsonBytes(meta);
  if (metadataBytes > quota.maxMetadataBytes) {
    throw new LimitExceededError('metadataBytes', `metadata is ${metadataBytes} bytes; the limit is ${quota.maxMetadataBytes}`, quota.maxMetadataBytes, metadataBytes);
  }
  if (ttlSeconds !== null && ttlSeconds !== undefined) {
    if (!Number.isInteger(ttlSeconds) || ttlSeconds < limits.minTtlSeconds || ttlSeconds > limits.maxTtlSeconds) {
      throw new LimitExceededError(
        'ttlSeconds',
        `ttlSeconds must be an integer from ${limits.minTtlSeconds} to ${limits.maxTtlSeconds}`,
        limits.maxTtlSeconds,
        Number.isFinite(ttlSeconds) ? Math.trunc(ttlSeconds) : null,
      );
    }
  }
  return { value, metadata: meta, valueBytes, metadataBytes };
}

/** Clock skew allowed between the gateway and the database that set an expiry (checkExpiryBound). */
const EXPIRY_SKEW_MS = 300_000;

/**
 * A stored expiry brought back (import): at most the longest TTL from now, as any write could have
 * set it (with 5 minutes for clock skew); an expiry in the past is fine (the record is expired).
 */
export function checkExpiryBound(expiresAt: string | null, limits: Pick<Limits, 'maxTtlSeconds'>, now = Date.now()): void {
  if (expiresAt === null) return;
  const at = Date.parse(expiresAt);
  const seconds = Math.ceil((at - now) / 1000);
  if (at > now + limits.maxTtlSeconds * 1000 + EXPIRY_SKEW_MS) {
    throw new LimitExceededError('ttlSeconds', `ttlExpiresAt is ${seconds} seconds from now; the limit is ${limits.maxTtlSeconds}`, limits.maxTtlSeconds, Number.isSafeInteger(seconds) ? seconds : null);
  }
}

export function checkPageSize(first: number | null | undefined, limits: Pick<Limits, 'maxPageSize' | 'defaultPageSize'>): number {
  const n = first ?? limits.defaultPageSize;
  if (!Number.isInteger(n) || n < 1 || n > limits.maxPageSize) {
    throw new LimitExceededError('pageSize', `a page takes 1 to ${limits.maxPageSize} items (GraphQL first, Runner limit)`, limits.maxPageSize, Number.isFinite(n) ? n : null);
  }
  return n;
}

export function checkKeysPerRead(keys: readonly string[], limits: Pick<Limits, 'maxKeysPerRead' | 'maxKeyLength'>): void {
  if (keys.length > limits.maxKeysPerRead) {
    throw new LimitExceededError('keysPerRead', `at most ${limits.maxKeysPerRead} keys per read`, limits.maxKeysPerRead, keys.length);
  }
  for (const key of keys) checkKey(key, limits);
}
