/**
 * docs/api.md, "Transactions: commit", `dryRun: true`: every decision as a real commit would make
 * it, the same result type and records, `committed: false`, `cursor: null`, and nothing written
 * (no record, no usage, no audit event). Examples first, then a property over random commits.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app.js';
import { assertProperty } from '../properties/replay.js';
import {
  check,
  commitClient,
  del,
  inc,
  put,
  setSchema,
  snapshot,
  timeless,
  type CheckInput,
  type CommitArgs,
  type CommitClient,
  type OperationInput,
  type Result,
} from './client.js';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => {
  await t?.close();
});

const SEED = 0xc0_11_17;

/** A dry run, checked to change nothing, then the same commit for real; both answers. */
async function dryThenReal(c: CommitClient, namespaces: string[], input: CommitArgs): Promise<{ dry: Result; real: Result }> {
  const before = await snapshot(t, c, namespaces);
  const dry = await c.commit({ ...input, dryRun: true });
  expect(await snapshot(t, c, namespaces), 'a dry run changed something').toEqual(before);
  const real = await c.commit({ ...input, dryRun: false });
  return { dry, real };
}

/** A result without what may differ between a dry run and the real commit: timestamps, committed, cursor, message. */
function comparable(result: Result): unknown {
  if (result.__typename === 'CommitSuccess') return { __typename: result.__typename, records: result.records.map(timeless) };
  const { message: _m, ...rest } = result;
  return rest;
}

describe('dryRun examples', () => {
  it('answers the records as they would be, committed false and cursor null, and writes nothing', async () => {
    const c = await commitClient(t);
    await c.put({ namespace: 'd1', key: 'upd', value: 'old', metadata: { a: 1 } });
    await c.put({ namespace: 'd1', key: 'gone', value: 'bye' });
    await c.put({ namespace: 'd2', key: 'n', value: 41, metadata: { unit: 'x' } });
    const input: CommitArgs = {
      checks: [check('d1', 'upd', 1), check('d1', 'new', 0)],
      operations: [put('d1', 'upd', { v: 2 }), put('d1', 'new', [1, 2], { metadata: { m: true }, ttlSeconds: 3600 }), del('d1', 'gone'), inc('d2', 'n', 1), inc('d3', 'fresh', 0.5)],
    };
    const { dry, real } = await dryThenReal(c, ['d1', 'd2', 'd3'], input);
    expect(dry).toMatchObject({ __typename: 'CommitSuccess', committed: false, cursor: null });
    expect(dry.records).toHaveLength(5);
    expect(dry.records[0]).toMatchObject({ namespace: 'd1', key: 'upd', value: { v: 2 }, metadata: {}, revision: 2 });
    expect(dry.records[1]).toMatchObject({ namespace: 'd1', key: 'new', value: [1, 2], metadata: { m: true }, revision: 1 });
    expect(dry.records[1].ttlExpiresAt).not.toBeNull();
    expect(dry.records[2]).toBeNull();
    expect(dry.records[3]).toMatchObject({ namespace: 'd2', key: 'n', value: 42, metadata: { unit: 'x' }, revision: 2 });
    expect(dry.records[4]).toMatchObject({ namespace: 'd3', key: 'fresh', value: 0.5, metadata: {}, revision: 1 });
    expect(real).toMatchObject({ __typename: 'CommitSuccess', committed: true });
    expect(real.records.map(timeless)).toEqual(dry.records.map(timeless));
  });

  it('a dry run with no other change in between can be repeated and answers the same', async () => {
    const c = await commitClient(t);
    await c.put({ namespace: 'rep', key: 'k', value: 1 });
    const input: CommitArgs = { operations: [inc('rep', 'k', 1)], dryRun: true };
    const first = await c.commit(input);
    const second = await c.commit(input);
    expect(first.records[0]).toMatchObject({ value: 2, revision: 2 });
    expect(second.records.map(timeless)).toEqual(first.records.map(timeless));
    expect(await c.get('rep', 'k')).toMatchObject({ value: 1, revision: 1 });
  });

  it('refuses exactly as the real commit would: conflict, increment type, schema, quota and limits', async () => {
    const c = await commitClient(t, { quota: { maxKeysPerNamespace: 2 } });
    await setSchema(t, c.install, 'typed', { type: 'number', maximum: 10 });
    await c.put({ namespace: 'plain', key: 'str', value: 'text' });
    await c.put({ namespace: 'plain', key: 'n', value: 1 });
    const cases: Array<[string, CommitArgs]> = [
      ['CommitConflict', { checks: [check('plain', 'n', 2), check('plain', 'str', 1), check('plain', 'none', 1)], operations: [put('plain', 'n', 2)] }],
      ['LimitExceeded', { operations: [put('plain', 'n', 2), inc('plain', 'str', 1)] }],
      ['ValidationFailed', { operations: [put('typed', 'a', 1), inc('typed', 'b', 11)] }],
      ['QuotaExceeded', { operations: [put('plain', 'third', 1)] }],
      ['LimitExceeded', { operations: [put('plain', 'x', 1), put('plain', 'x', 2)] }],
    ];
    for (const [typename, input] of cases) {
      const { dry, real } = await dryThenReal(c, ['plain', 'typed'], input);
      expect(dry.__typename, JSON.stringify(input)).toBe(typename);
      expect(comparable(dry)).toEqual(comparable(real));
    }
    expect(await c.get('plain', 'n')).toMatchObject({ value: 1, revision: 1 });
  });
});

// ------------------------------------------------------------------------------ the property

const NAMESPACES = ['x', 'y', 'z'];
const KEYS = ['a', 'b', 'c', 'd'];

const target = fc.record({ namespace: fc.constantFrom(...NAMESPACES), key: fc.constantFrom(...KEYS) });
const value = fc.oneof(fc.integer({ min: -5, max: 15 }), fc.constantFrom('s', 'longer string'), fc.record({ n: fc.integer({ min: 0, max: 3 }) }), fc.constant(0.1));
const ttl = fc.option(fc.constant(3600), { nil: undefined });
const operation: fc.Arbitrary<OperationInput> = fc.oneof(
  fc.tuple(target, value, ttl, fc.option(fc.constant({ tag: 'm' }), { nil: undefined })).map(([k, v, ttlSeconds, metadata]) =>
    put(k.namespace, k.key, v, { ...(ttlSeconds ? { ttlSeconds } : {}), ...(metadata ? { metadata } : {}) }),
  ),
  target.map((k) => del(k.namespace, k.key)),
  fc.tuple(target, fc.oneof(fc.integer({ min: -6, max: 6 }), fc.constant(0.2)), ttl).map(([k, by, ttlSeconds]) => inc(k.namespace, k.key, by, ttlSeconds)),
);
const keyOf = (op: OperationInput) => {
  const t = 'put' in op ? op.put : 'delete' in op ? op.delete : op.increment;
  return `${t.namespace}/${t.key}`;
};
const scenario = fc.record({
  setup: fc.array(fc.tuple(target, value, fc.boolean()), { maxLength: 8 }),
  // Random checks mostly fail; half the commits carry none, so the later stages are reached too.
  checks: fc.oneof(
    fc.constant([] as CheckInput[]),
    fc.array(fc.tuple(target, fc.integer({ min: 0, max: 2 })).map(([k, r]): CheckInput => check(k.namespace, k.key, r)), { minLength: 1, maxLength: 3 }),
  ),
  // Mostly distinct keys (a duplicate is refused before anything is read, which the examples cover).
  operations: fc.oneof(
    { weight: 9, arbitrary: fc.uniqueArray(operation, { minLength: 1, maxLength: 5, selector: keyOf }) },
    { weight: 1, arbitrary: fc.array(operation, { minLength: 1, maxLength: 4 }) },
  ),
});

describe('dryRun property', () => {
  it('a dry run and then the same commit give the same result type and records, and the dry run writes nothing', async () => {
    const seen = new Map<string, number>();
    await assertProperty(
      fc.asyncProperty(scenario, async ({ setup, checks, operations }) => {
        // Small quotas so that quota decisions happen; a schema on z so that schema decisions do.
        const c = await commitClient(t, { quota: { maxKeysPerNamespace: 3, maxNamespaces: 2 } });
        await setSchema(t, c.install, 'z', { type: 'number', maximum: 10 });
        for (const [k, v, twice] of setup) {
          await c.put({ namespace: k.namespace, key: k.key, value: v });
          if (twice) await c.put({ namespace: k.namespace, key: k.key, value: v });
        }
        const { dry, real } = await dryThenReal(c, NAMESPACES, { checks, operations });
        seen.set(dry.__typename, (seen.get(dry.__typename) ?? 0) + 1);
        expect(comparable(real)).toEqual(comparable(dry));
        if (dry.__typename === 'CommitSuccess') {
          expect(dry).toMatchObject({ committed: false, cursor: null });
          expect(real.committed).toBe(true);
          // What the real commit answered is what is stored now.
          for (const [i, op] of operations.entries()) {
            const [ns, key] = keyOf(op).split('/') as [string, string];
            const stored = await c.get(ns, key);
            expect(timeless(stored)).toEqual(timeless(real.records[i]));
          }
        }
      }),
      60,
      SEED,
    );
    // The random commits reached the interesting outcomes, not only one of them.
    // (With the fixed seed: 17 successes, 28 conflicts, 9 quota, 5 schema and 1 limit refusals of 60.)
    expect(seen.get('CommitSuccess') ?? 0).toBeGreaterThan(0);
    expect(seen.size).toBeGreaterThanOrEqual(3);
  });
});
