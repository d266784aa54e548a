/**
 * An in-memory model of one install's storage: the rules of the contract (revisions, check
 * order, quotas, usage) written as simply as possible, to compare the gateway against.
 *
 * Concurrency: the gateway serialises the writes of one install, so the answers to a batch of
 * concurrent commands must equal the model's answers for some order of that batch. `World` is one
 * state the install may be in; the property keeps every world consistent with what it has seen.
 */
import { isDeepStrictEqual } from 'node:util';
import type { QuotaSettings } from '../../src/config.js';
import type { Observed, Outcome } from './gateway.js';

export interface Rec {
  value: unknown;
  metadata: Record<string, unknown>;
  revision: number;
  ttl: number | null;
  bytes: number;
  createdAt?: string;
}

/** Live records only, by namespace then key; a namespace with no live record is absent. */
export interface World {
  ns: Record<string, Record<string, Rec>>;
}

export interface WriteItem {
  key: string;
  value: unknown;
  metadata?: unknown;
  ttl: number | null;
  ifRevision: number | null;
}

export type ModelCommand =
  | ({ t: 'put'; ns: string } & WriteItem)
  | { t: 'bulk'; ns: string; items: WriteItem[] }
  | { t: 'del'; ns: string; key: string; ifRevision: number | null }
  | { t: 'get'; ns: string; key: string };

export interface ModelLimits {
  minTtl: number;
  maxTtl: number;
  maxBulkItems: number;
  maxBulkBytes: number;
}

const NAMESPACE_RE = /^[a-z0-9][a-z0-9._-]{0,63}$/;
// eslint-disable-next-line no-control-regex
const CONTROL_RE = /[\u0000-\u001f\u007f]/;

export const jsonBytes = (v: unknown): number => Buffer.byteLength(JSON.stringify(v), 'utf8');

/** Key order of `recordList`: the bytes of the UTF-8 encoding (COLLATE "C"). */
export const byteOrder = (a: string, b: string): number => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));

export function emptyWorld(): World {
  return { ns: {} };
}

export function cloneWorld(w: World): World {
  return structuredClone(w);
}

/** A canonical text of a world, to drop duplicates among the possible worlds. */
export function worldKey(w: World): string {
  return JSON.stringify(
    Object.keys(w.ns)
      .sort()
      .map((ns) => [ns, Object.keys(w.ns[ns]!).sort().map((k) => [k, canonical(w.ns[ns]![k])])]),
  );
}

function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (v && typeof v === 'object') {
    return Object.keys(v)
      .sort()
      .map((k) => [k, canonical((v as Record<string, unknown>)[k])]);
  }
  return v;
}

export function recordOf(w: World, ns: string, key: string): Rec | undefined {
  return w.ns[ns]?.[key];
}

export function usageOf(w: World): { namespaces: number; keys: number; bytes: number } {
  let keys = 0;
  let bytes = 0;
  let namespaces = 0;
  for (const records of Object.values(w.ns)) {
    const recs = Object.values(records);
    if (recs.length > 0) namespaces++;
    keys += recs.length;
    for (const r of recs) bytes += r.bytes;
  }
  return { namespaces, keys, bytes };
}

function setRecord(w: World, ns: string, key: string, rec: Rec): void {
  (w.ns[ns] ??= {})[key] = rec;
}

export function removeRecord(w: World, ns: string, key: string): void {
  const records = w.ns[ns];
  if (!records) return;
  delete records[key];
  if (Object.keys(records).length === 0) delete w.ns[ns];
}

function keyProblem(key: string): string | null {
  if (!key.isWellFormed()) return 'keyFormat';
  const length = [...key].length;
  if (length < 1 || length > 256) return 'keyLength';
  if (CONTROL_RE.test(key)) return 'keyFormat';
  return null;
}

function isObject(v: unknown): boolean {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const limit = (name: string, itemIndex: number | null): Outcome => ({ kind: 'limit', limit: name, itemIndex });

/**
 * Names-and-formats problems of one item. The contract orders the stages, not the checks inside
 * one stage, so every problem of the stage is an acceptable answer.
 */
function formatProblems(item: WriteItem, itemIndex: number | null): Outcome[] {
  const out: Outcome[] = [];
  if (item.ifRevision !== null && item.ifRevision < 0) out.push({ kind: 'badInput' });
  const key = keyProblem(item.key);
  if (key) out.push(limit(key, itemIndex));
  if (item.value === null || item.value === undefined) out.push(limit('valueType', itemIndex));
  if (item.metadata !== undefined && item.metadata !== null && !isObject(item.metadata)) out.push(limit('metadataType', itemIndex));
  return out;
}

/** Sizes-and-TTL problems of one item. */
function sizeProblems(item: WriteItem, quota: QuotaSettings, limits: ModelLimits, itemIndex: number | null): Outcome[] {
  const out: Outcome[] = [];
  if (jsonBytes(item.value) > quota.maxValueBytes) out.push(limit('valueBytes', itemIndex));
  if (jsonBytes(item.metadata ?? {}) > quota.maxMetadataBytes) out.push(limit('metadataBytes', itemIndex));
  if (item.ttl !== null && (!Number.isInteger(item.ttl) || item.ttl < limits.minTtl || item.ttl > limits.maxTtl)) {
    out.push(limit('ttlSeconds', itemIndex));
  }
  return out;
}

function revisionProblem(w: World, ns: string, key: string, ifRevision: number | null): Outcome | null {
  if (ifRevision === null) return null;
  const current = recordOf(w, ns, key)?.revision ?? null;
  const ok = ifRevision === 0 ? current === null : current === ifRevision;
  return ok ? null : { kind: 'mismatch', key, expected: ifRevision, current };
}

function quotaProblem(w: World, quota: QuotaSettings, ns: string, newKeys: boolean[], deltas: number[], bulk: boolean): Outcome | null {
  const usage = usageOf(w);
  const nsKeys = Object.keys(w.ns[ns] ?? {}).length;
  const keysDelta = newKeys.filter(Boolean).length;
  const bytesDelta = deltas.reduce((s, d) => s + d, 0);
  const at = (i: number) => (bulk ? i : null);
  if (nsKeys === 0 && keysDelta > 0 && usage.namespaces + 1 > quota.maxNamespaces) {
    return { kind: 'quota', quota: 'namespaces', allowed: quota.maxNamespaces, used: usage.namespaces, itemIndex: at(newKeys.indexOf(true)) };
  }
  if (keysDelta > 0 && nsKeys + keysDelta > quota.maxKeysPerNamespace) {
    let running = nsKeys;
    const first = newKeys.findIndex((isNew) => isNew && ++running > quota.maxKeysPerNamespace);
    return { kind: 'quota', quota: 'keysPerNamespace', allowed: quota.maxKeysPerNamespace, used: nsKeys, itemIndex: at(first) };
  }
  if (bytesDelta > 0 && usage.bytes + bytesDelta > quota.maxBytes) {
    let running = usage.bytes;
    const first = deltas.findIndex((d) => (running += d) > quota.maxBytes);
    return { kind: 'quota', quota: 'bytes', allowed: quota.maxBytes, used: usage.bytes, itemIndex: at(first) };
  }
  return null;
}

/** What the gateway must answer to `cmd` in world `w`, and how the world changes if it succeeds. */
export interface Expectation {
  /** The acceptable answers (several only when the contract leaves the order inside one stage open). */
  outcomes: Outcome[];
  /** Applies a success to the world, taking createdAt of new records from the gateway's answer. */
  commit?(actual: Outcome): void;
}

const only = (outcome: Outcome): Expectation => ({ outcomes: [outcome] });

export function expectOf(w: World, quota: QuotaSettings, limits: ModelLimits, cmd: ModelCommand): Expectation {
  const nsProblem = NAMESPACE_RE.test(cmd.ns) ? [] : [limit('namespaceFormat', null)];
  switch (cmd.t) {
    case 'get': {
      const kp = keyProblem(cmd.key);
      const names = [...nsProblem, ...(kp ? [limit(kp, null)] : [])];
      if (names.length > 0) return { outcomes: names };
      const rec = recordOf(w, cmd.ns, cmd.key);
      return only({ kind: 'get', record: rec ? observedOf(cmd.key, rec) : null });
    }
    case 'del': {
      const kp = keyProblem(cmd.key);
      const names: Outcome[] = [...nsProblem, ...(cmd.ifRevision !== null && cmd.ifRevision < 0 ? [{ kind: 'badInput' } as const] : [])];
      if (kp) names.push(limit(kp, null));
      if (names.length > 0) return { outcomes: names };
      const mismatch = revisionProblem(w, cmd.ns, cmd.key, cmd.ifRevision);
      if (mismatch) return only(mismatch);
      const exists = recordOf(w, cmd.ns, cmd.key) !== undefined;
      return { outcomes: [{ kind: 'deleted', deleted: exists }], commit: () => removeRecord(w, cmd.ns, cmd.key) };
    }
    case 'put':
      return writeExpectation(w, quota, limits, cmd.ns, nsProblem, [cmd], false);
    case 'bulk': {
      if (cmd.items.length === 0 || cmd.items.length > limits.maxBulkItems) return only(limit('bulkItems', null));
      const seen = new Set<string>();
      for (const [i, item] of cmd.items.entries()) {
        if (seen.has(item.key)) return only(limit('bulkDuplicateKey', i));
        seen.add(item.key);
      }
      return writeExpectation(w, quota, limits, cmd.ns, nsProblem, cmd.items, true);
    }
  }
}

function writeExpectation(
  w: World,
  quota: QuotaSettings,
  limits: ModelLimits,
  ns: string,
  nsProblem: Outcome[],
  items: WriteItem[],
  bulk: boolean,
): Expectation {
  const at = (i: number) => (bulk ? i : null);
  // Names and formats: the namespace, then the first item with a problem.
  const firstFormat = items.map((item, i) => formatProblems(item, at(i))).find((p) => p.length > 0) ?? [];
  if (nsProblem.length + firstFormat.length > 0) return { outcomes: [...nsProblem, ...firstFormat] };
  const firstSize = items.map((item, i) => sizeProblems(item, quota, limits, at(i))).find((p) => p.length > 0);
  if (firstSize) return { outcomes: firstSize };
  const sizes = items.map((i) => jsonBytes(i.value) + jsonBytes(i.metadata ?? {}));
  if (bulk && sizes.reduce((s, n) => s + n, 0) > limits.maxBulkBytes) return only(limit('bulkBytes', null));
  for (const item of items) {
    const mismatch = revisionProblem(w, ns, item.key, item.ifRevision);
    if (mismatch) return only(mismatch);
  }
  const current = items.map((i) => recordOf(w, ns, i.key));
  const quotaError = quotaProblem(
    w,
    quota,
    ns,
    current.map((c) => c === undefined),
    items.map((_, i) => sizes[i]! - (current[i]?.bytes ?? 0)),
    bulk,
  );
  if (quotaError) return only(quotaError);

  const written: Rec[] = items.map((item, i) => ({
    value: item.value,
    metadata: (item.metadata ?? {}) as Record<string, unknown>,
    revision: (current[i]?.revision ?? 0) + 1,
    ttl: item.ttl,
    bytes: sizes[i]!,
    ...(current[i]?.createdAt ? { createdAt: current[i]!.createdAt } : {}),
  }));
  const observedRecords = written.map((rec, i) => observedOf(items[i]!.key, rec));
  const outcome: Outcome = bulk ? { kind: 'bulk', records: observedRecords } : { kind: 'put', record: observedRecords[0]! };
  return {
    outcomes: [outcome],
    commit(actual) {
      const got = actual.kind === 'bulk' ? actual.records : actual.kind === 'put' ? [actual.record] : [];
      written.forEach((rec, i) => {
        const createdAt = rec.createdAt ?? got[i]?.createdAt;
        setRecord(w, ns, items[i]!.key, createdAt ? { ...rec, createdAt } : rec);
      });
    },
  };
}

export function observedOf(key: string, rec: Rec): Observed {
  return {
    key,
    value: rec.value,
    metadata: rec.metadata,
    revision: rec.revision,
    ttl: rec.ttl,
    ...(rec.createdAt ? { createdAt: rec.createdAt } : {}),
  };
}

/** Why an observed record differs from the expected one, or null. Fields a door did not report are not compared. */
export function recordDiff(expected: Observed, actual: Observed): string | null {
  if (expected.key !== actual.key) return `key ${JSON.stringify(actual.key)} != ${JSON.stringify(expected.key)}`;
  if (expected.revision !== actual.revision) return `${expected.key}: revision ${actual.revision} != ${expected.revision}`;
  if (actual.ttl === 'set' ? expected.ttl === null : actual.ttl !== expected.ttl) {
    return `${expected.key}: ttl ${actual.ttl} != ${expected.ttl}`;
  }
  if (expected.createdAt && actual.createdAt && expected.createdAt !== actual.createdAt) {
    return `${expected.key}: createdAt changed from ${expected.createdAt} to ${actual.createdAt}`;
  }
  if ('value' in actual && !isDeepStrictEqual(actual.value, expected.value)) {
    return `${expected.key}: value ${JSON.stringify(actual.value)} != ${JSON.stringify(expected.value)}`;
  }
  if ('metadata' in actual && !isDeepStrictEqual(actual.metadata, expected.metadata)) {
    return `${expected.key}: metadata ${JSON.stringify(actual.metadata)} != ${JSON.stringify(expected.metadata)}`;
  }
  return null;
}

/** Why an answer differs from the expected one, or null when it matches. */
export function outcomeDiff(expected: Outcome, actual: Outcome): string | null {
  if (expected.kind !== actual.kind) return `expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`;
  switch (expected.kind) {
    case 'put':
      return recordDiff(expected.record, (actual as typeof expected).record);
    case 'bulk': {
      const a = (actual as typeof expected).records;
      if (a.length !== expected.records.length) return `bulk wrote ${a.length} records, expected ${expected.records.length}`;
      for (const [i, r] of expected.records.entries()) {
        const d = recordDiff(r, a[i]!);
        if (d) return `item ${i}: ${d}`;
      }
      return null;
    }
    case 'get': {
      const a = (actual as typeof expected).record;
      if (expected.record === null || a === null) {
        return expected.record === a ? null : `get: expected ${JSON.stringify(expected.record)}, got ${JSON.stringify(a)}`;
      }
      return recordDiff(expected.record, a);
    }
    default:
      return isDeepStrictEqual(expected, actual) ? null : `expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`;
  }
}

/** Every order of `items` (batches are small: at most a few commands per install). */
export function* permutations<T>(items: readonly T[]): Generator<T[]> {
  if (items.length <= 1) {
    yield [...items];
    return;
  }
  for (let i = 0; i < items.length; i++) {
    const rest = [...items.slice(0, i), ...items.slice(i + 1)];
    for (const p of permutations(rest)) yield [items[i]!, ...p];
  }
}

/** Null when `actual` is one of the acceptable answers, else why not. */
export function expectationDiff(e: Expectation, actual: Outcome): string | null {
  const diffs = e.outcomes.map((o) => outcomeDiff(o, actual));
  return diffs.some((d) => d === null) ? null : diffs.join(' | or | ');
}
