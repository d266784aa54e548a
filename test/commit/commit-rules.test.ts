/**
 * docs/api.md, "Transactions: commit": capability, limits and their precedence across the whole
 * commit, checks (absent, expired, live, written by the same commit), atomicity, results and audit.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp, type TestInstall } from '../support/app.js';
import { errorOf, GET } from '../records/client.js';
import {
  auditEvents,
  check,
  commitClient,
  dataOf,
  del,
  inc,
  PAST_ONE_SECOND,
  put,
  setSchema,
  sleep,
  snapshot,
  storedBytes,
  type CommitClient,
  type OperationInput,
  type Result,
} from './client.js';

let t: TestApp;
beforeAll(async () => {
  // A 1 s minimum TTL lets the expiry tests wait about a second instead of a minute.
  t = await startTestApp({ STORAGE_MIN_TTL_SECONDS: '1' });
});
afterAll(async () => {
  await t?.close();
});

const MIB = 1024 * 1024;
/** 17 puts of 62,004 stored bytes each: every one fits the value limit, together they pass 1 MiB. */
const bigPuts = (ns = 'big'): OperationInput[] => Array.from({ length: 17 }, (_, i) => put(ns, `big-${i}`, 'x'.repeat(62_000)));
const BIG_TOTAL = 17 * storedBytes('x'.repeat(62_000));

function limit(name: string, itemIndex: number | null) {
  return expect.objectContaining({ __typename: 'LimitExceeded', code: 'LIMIT_EXCEEDED', limit: name, itemIndex });
}

async function adminGet(install: TestInstall, ns: string, key: string): Promise<Result | null> {
  return dataOf(await t.gql(GET, { ns, key, installId: install.id }, { token: await t.adminToken(install.tenantId) })).record;
}

/** A commit that is refused must leave records, usage and audit as they were. */
async function expectRefusedUnchanged(c: CommitClient, namespaces: string[], run: () => Promise<unknown>) {
  const before = await snapshot(t, c, namespaces);
  await run();
  expect(await snapshot(t, c, namespaces)).toEqual(before);
}

describe('capability comes first', () => {
  it('an operation on a namespace the install may not use is FORBIDDEN, even when the commit breaks every limit too', async () => {
    const c = await commitClient(t, { namespaces: ['allowed'] });
    await c.put({ namespace: 'allowed', key: 'k', value: 'before' });
    await expectRefusedUnchanged(c, ['allowed'], async () => {
      const one = await c.commitRaw({ operations: [put('allowed', 'k', 'changed'), put('other', 'k', 1)] });
      expect(errorOf(one).extensions.code).toBe('FORBIDDEN');
      expect(one.body.data ?? null).toBeNull();
      // (One oversized value: the request body itself has a size limit.)
      const tooMany = Array.from({ length: 101 }, (_, i) => put('other', `k${i}`, i === 0 ? 'x'.repeat(70_000) : i));
      expect(errorOf(await c.commitRaw({ operations: tooMany })).extensions.code).toBe('FORBIDDEN');
      const dup = [put('allowed', 'k', 1), del('other', 'bad\u0001key'), inc('allowed', 'k', 1)];
      expect(errorOf(await c.commitRaw({ operations: dup })).extensions.code).toBe('FORBIDDEN');
      expect(errorOf(await c.commitRaw({ operations: [inc('other', 'n', 1)] })).extensions.code).toBe('FORBIDDEN');
      expect(errorOf(await c.commitRaw({ operations: [del('other', 'n')] })).extensions.code).toBe('FORBIDDEN');
    });
  });

  it('a check on a namespace the install may not use is FORBIDDEN and nothing is written', async () => {
    const c = await commitClient(t, { namespaces: ['allowed'] });
    await expectRefusedUnchanged(c, ['allowed'], async () => {
      const res = await c.commitRaw({ checks: [check('other', 'k', 0)], operations: [put('allowed', 'k', 1)] });
      expect(errorOf(res).extensions.code).toBe('FORBIDDEN');
      const withLimits = await c.commitRaw({ checks: Array.from({ length: 101 }, (_, i) => check('other', `k${i}`, 0)), operations: [] });
      expect(errorOf(withLimits).extensions.code).toBe('FORBIDDEN');
    });
  });

  it('a check needs read capability: an install that may write but not read gets FORBIDDEN for a commit with a check', async () => {
    const install = await t.createInstall({ canRead: false });
    const token = await install.token();
    const gql = (input: Record<string, unknown>) => t.gql(`mutation C($input: CommitInput!) { commit(input: $input) { __typename ... on CommitSuccess { committed } } }`, { input }, { token });
    const res = await gql({ checks: [check('ns', 'guard', 0)], operations: [put('ns', 'k', 1)] });
    expect(errorOf(res).extensions.code).toBe('FORBIDDEN');
    expect(await adminGet(install, 'ns', 'k')).toBeNull();
    // Operations alone need only write capability.
    const plain = await gql({ operations: [put('ns', 'k', 2)] });
    expect(dataOf(plain).commit).toEqual({ __typename: 'CommitSuccess', committed: true });
    expect(await adminGet(install, 'ns', 'k')).toMatchObject({ value: 2, revision: 1 });
  });

  it('an install without write capability cannot commit at all', async () => {
    const c = await commitClient(t, { canWrite: false });
    const res = await c.commitRaw({ operations: [put('ns', 'k', 1)] });
    expect(errorOf(res).extensions.code).toBe('FORBIDDEN');
    expect(await c.get('ns', 'k')).toBeNull();
  });
});

describe('commit limits', () => {
  let c: CommitClient;
  beforeAll(async () => {
    c = await commitClient(t);
  });

  it('commitOperations: an empty list and 101 operations are refused with itemIndex null; 100 operations commit', async () => {
    expect(await c.commit({ operations: [] })).toEqual(limit('commitOperations', null));
    expect(await c.commit({ operations: [] })).toMatchObject({ max: 100, actual: 0 });
    const ops101 = Array.from({ length: 101 }, (_, i) => put('ops', `k${i}`, i));
    expect(await c.commit({ operations: ops101 })).toMatchObject({ __typename: 'LimitExceeded', limit: 'commitOperations', max: 100, actual: 101, itemIndex: null });
    expect(await c.get('ops', 'k0')).toBeNull();
    const ok = await c.commit({ operations: ops101.slice(0, 100) });
    expect(ok.__typename).toBe('CommitSuccess');
    expect(ok.records).toHaveLength(100);
  });

  it('commitOperations wins over commitChecks, duplicate keys, bad names and sizes', async () => {
    const ops = Array.from({ length: 101 }, (_, i) => put('BAD NS', 'same', i === 1 ? 'x'.repeat(70_000) : i));
    const checks = Array.from({ length: 101 }, (_, i) => check('Bad', `k${i}`, 0));
    expect(await c.commit({ checks, operations: ops })).toEqual(limit('commitOperations', null));
  });

  it('commitChecks: 101 checks are refused with itemIndex null; 100 checks pass', async () => {
    const checks = (n: number) => Array.from({ length: n }, (_, i) => check('checks', `absent-${i}`, 0));
    expect(await c.commit({ checks: checks(101), operations: [put('checks', 'w', 1)] })).toMatchObject({
      __typename: 'LimitExceeded',
      limit: 'commitChecks',
      max: 100,
      actual: 101,
      itemIndex: null,
    });
    expect(await c.get('checks', 'w')).toBeNull();
    expect((await c.commit({ checks: checks(100), operations: [put('checks', 'w', 1)] })).__typename).toBe('CommitSuccess');
  });

  it('commitChecks wins over duplicate keys and bad names', async () => {
    const checks = Array.from({ length: 101 }, (_, i) => check('checks', `absent-${i}`, 0));
    const ops = [put('dup', 'k', 1), put('dup', 'k', 2), put('BAD', 'k', 3)];
    expect(await c.commit({ checks, operations: ops })).toEqual(limit('commitChecks', null));
  });

  it('commitDuplicateKey names the second occurrence, also across operation kinds', async () => {
    expect(await c.commit({ operations: [put('dup', 'a', 1), put('dup', 'b', 1), put('dup', 'a', 2)] })).toEqual(limit('commitDuplicateKey', 2));
    expect(await c.commit({ operations: [put('dup', 'k', 1), inc('dup', 'n', 1), del('dup', 'k')] })).toEqual(limit('commitDuplicateKey', 2));
    expect(await c.commit({ operations: [inc('dup', 'n', 1), put('dup', 'n', 5)] })).toEqual(limit('commitDuplicateKey', 1));
    expect(await c.commit({ operations: [del('dup', 'x'), del('dup', 'x'), del('dup', 'x')] })).toEqual(limit('commitDuplicateKey', 1));
    expect(await c.get('dup', 'a')).toBeNull();
    expect(await c.get('dup', 'k')).toBeNull();
    expect(await c.get('dup', 'n')).toBeNull();
  });

  it('the same key in different namespaces is not a duplicate', async () => {
    const res = await c.commit({ operations: [put('dup-a', 'k', 'a'), put('dup-b', 'k', 'b'), inc('dup-c', 'k', 3)] });
    expect(res.__typename).toBe('CommitSuccess');
    expect(res.records.map((r: Result) => [r.namespace, r.key, r.value])).toEqual([
      ['dup-a', 'k', 'a'],
      ['dup-b', 'k', 'b'],
      ['dup-c', 'k', 3],
    ]);
  });

  it('commitDuplicateKey wins over names, sizes and commitBytes', async () => {
    const ops = [put('BAD NS', 'k', 'x'.repeat(70_000)), ...bigPuts('dupbytes'), put('dupbytes', 'big-3', 1)];
    expect(await c.commit({ operations: ops })).toEqual(limit('commitDuplicateKey', 18));
  });
});

describe('names and formats, then sizes and TTL, then commitBytes', () => {
  let c: CommitClient;
  beforeAll(async () => {
    c = await commitClient(t);
  });

  it('a malformed namespace or key of an operation names the operation', async () => {
    expect(await c.commit({ operations: [put('ok', 'a', 1), put('ok', 'b', 1), put('Not-Valid', 'c', 1)] })).toEqual(limit('namespaceFormat', 2));
    expect(await c.commit({ operations: [del('-bad', 'a'), put('ok', 'b', 1)] })).toEqual(limit('namespaceFormat', 0));
    expect(await c.commit({ operations: [put('ok', 'a', 1), inc('ok', 'tab\there', 1)] })).toEqual(limit('keyFormat', 1));
    expect(await c.commit({ operations: [put('ok', 'a', 1), put('ok', 'b', 1), put('ok', 'k'.repeat(257), 1)] })).toEqual(limit('keyLength', 2));
    expect(await c.get('ok', 'a')).toBeNull();
  });

  it('a malformed check name is LimitExceeded with itemIndex null', async () => {
    expect(await c.commit({ checks: [check('ok', 'a', 0), check('UPPER', 'a', 0)], operations: [put('ok', 'a', 1)] })).toEqual(limit('namespaceFormat', null));
    expect(await c.commit({ checks: [check('ok', 'bad\u0007key', 0)], operations: [put('ok', 'a', 1)] })).toEqual(limit('keyFormat', null));
    expect(await c.commit({ checks: [check('ok', '', 0)], operations: [put('ok', 'a', 1)] })).toEqual(limit('keyLength', null));
    expect(await c.get('ok', 'a')).toBeNull();
  });

  it('names and formats win over sizes and TTL anywhere in the commit', async () => {
    const ops = [put('ok', 'huge', 'x'.repeat(70_000)), put('ok', 'b', 1, { ttlSeconds: 0 }), put('ok', 'c', 1), put('ok', 'bad\u0001', 1)];
    expect(await c.commit({ operations: ops })).toEqual(limit('keyFormat', 3));
    expect(await c.commit({ checks: [check('Bad', 'x', 0)], operations: ops.slice(0, 3) })).toEqual(limit('namespaceFormat', null));
  });

  it('sizes and TTL name the operation', async () => {
    expect(await c.commit({ operations: [put('ok', 'a', 1), put('ok', 'b', 'x'.repeat(70_000))] })).toMatchObject({
      __typename: 'LimitExceeded',
      limit: 'valueBytes',
      max: 65_536,
      actual: 70_002,
      itemIndex: 1,
    });
    expect(await c.commit({ operations: [put('ok', 'a', 1, { metadata: { m: 'y'.repeat(5_000) } }), put('ok', 'b', 1)] })).toEqual(limit('metadataBytes', 0));
    expect(await c.commit({ operations: [put('ok', 'a', 1), put('ok', 'b', 1), put('ok', 'c', 1, { ttlSeconds: 30 * 24 * 3600 + 1 })] })).toEqual(limit('ttlSeconds', 2));
    expect(await c.commit({ operations: [put('ok', 'a', 1), inc('ok', 'n', 1, 0)] })).toEqual(limit('ttlSeconds', 1));
    expect(await c.get('ok', 'a')).toBeNull();
  });

  it('commitBytes: values and metadata of the puts over 1 MiB in total, itemIndex null', async () => {
    const res = await c.commit({ operations: bigPuts() });
    expect(res).toEqual(limit('commitBytes', null));
    expect(res).toMatchObject({ max: MIB, actual: BIG_TOTAL });
    expect(await c.get('big', 'big-0')).toBeNull();
    // The same puts without the last one fit.
    expect((await c.commit({ operations: bigPuts().slice(0, 16) })).__typename).toBe('CommitSuccess');
  });

  it('sizes and TTL of any operation win over commitBytes', async () => {
    const withTtl = [...bigPuts('bytes2'), put('bytes2', 'ttl', 1, { ttlSeconds: 99_999_999 })];
    expect(await c.commit({ operations: withTtl })).toEqual(limit('ttlSeconds', 17));
    const withHuge = bigPuts('bytes2');
    withHuge[9] = put('bytes2', 'huge', 'x'.repeat(70_000));
    withHuge.push(put('bytes2', 'more', 'x'.repeat(62_000)));
    expect(await c.commit({ operations: withHuge })).toEqual(limit('valueBytes', 9));
  });
});

describe('stages decided against stored state: commitBytes, checks, increment types, schema, quotas', () => {
  it('commitBytes wins over a failed check', async () => {
    const c = await commitClient(t);
    expect(await c.commit({ checks: [check('big', 'absent', 3)], operations: bigPuts() })).toEqual(limit('commitBytes', null));
  });

  it('a failed check wins over an increment of a non-number, a schema failure and a quota', async () => {
    const c = await commitClient(t, { quota: { maxKeysPerNamespace: 1 } });
    await setSchema(t, c.install, 'typed', { type: 'number', maximum: 10 });
    await c.put({ namespace: 'plain', key: 'str', value: 'text' });
    await expectRefusedUnchanged(c, ['plain', 'typed'], async () => {
      const res = await c.commit({
        checks: [check('plain', 'str', 1), check('plain', 'absent', 4)],
        operations: [inc('plain', 'str', 1), put('typed', 'x', 99), put('plain', 'new', 1)],
      });
      expect(res).toEqual({
        __typename: 'CommitConflict',
        code: 'REVISION_MISMATCH',
        message: expect.any(String),
        conflicts: [{ index: 1, namespace: 'plain', key: 'absent', expectedRevision: 4, currentRevision: null }],
      });
    });
  });

  it('an increment of a non-number wins over a schema failure and a quota', async () => {
    const c = await commitClient(t, { quota: { maxKeysPerNamespace: 1 } });
    await setSchema(t, c.install, 'typed', { type: 'number', maximum: 10 });
    await c.put({ namespace: 'plain', key: 'str', value: { not: 'a number' } });
    await expectRefusedUnchanged(c, ['plain', 'typed'], async () => {
      const res = await c.commit({ operations: [put('typed', 'x', 99), put('plain', 'new', 1), inc('plain', 'str', 1)] });
      expect(res).toEqual(limit('valueType', 2));
    });
  });

  it('a schema failure wins over a quota, and its issue paths name the operation', async () => {
    const c = await commitClient(t, { quota: { maxKeysPerNamespace: 1 } });
    const version = await setSchema(t, c.install, 'typed', { type: 'number', maximum: 10 });
    await c.put({ namespace: 'plain', key: 'a', value: 1 });
    await expectRefusedUnchanged(c, ['plain', 'typed'], async () => {
      const res = await c.commit({ operations: [put('plain', 'b', 1), put('typed', 'ok', 3), put('typed', 'x', 99)] });
      expect(res).toMatchObject({ __typename: 'ValidationFailed', code: 'VALIDATION_FAILED', schemaVersion: version });
      expect(res.issues.length).toBeGreaterThan(0);
      for (const issue of res.issues) expect(issue.path === '/2' || issue.path.startsWith('/2/')).toBe(true);
    });
  });

  it('a quota is QuotaExceeded with itemIndex null, and writes nothing', async () => {
    const c = await commitClient(t, { quota: { maxKeysPerNamespace: 1 } });
    await c.put({ namespace: 'plain', key: 'a', value: 1 });
    await expectRefusedUnchanged(c, ['plain', 'other'], async () => {
      const res = await c.commit({ operations: [put('other', 'x', 1), put('plain', 'a', 2), put('plain', 'b', 1)] });
      expect(res).toEqual({
        __typename: 'QuotaExceeded',
        code: 'QUOTA_EXCEEDED',
        message: expect.any(String),
        quota: 'keysPerNamespace',
        allowed: 1,
        used: 1,
        itemIndex: null,
      });
    });
  });
});

describe('checks', () => {
  let c: CommitClient;
  beforeAll(async () => {
    c = await commitClient(t);
  });

  it('on an absent key: revision 0 passes, revision n fails with currentRevision null', async () => {
    const ok = await c.commit({ checks: [check('chk', 'absent', 0)], operations: [put('chk', 'w1', 1)] });
    expect(ok).toMatchObject({ __typename: 'CommitSuccess', committed: true });
    const bad = await c.commit({ checks: [check('chk', 'absent', 2)], operations: [put('chk', 'w2', 1)] });
    expect(bad).toMatchObject({
      __typename: 'CommitConflict',
      code: 'REVISION_MISMATCH',
      conflicts: [{ index: 0, namespace: 'chk', key: 'absent', expectedRevision: 2, currentRevision: null }],
    });
    expect(await c.get('chk', 'w2')).toBeNull();
  });

  it('on an expired record: it counts as absent', async () => {
    await c.put({ namespace: 'chk', key: 'brief', value: 1, ttlSeconds: 1 });
    const live = await c.commit({ checks: [check('chk', 'brief', 0)], operations: [put('chk', 'w3', 1)] });
    expect(live).toMatchObject({ __typename: 'CommitConflict', conflicts: [{ index: 0, key: 'brief', expectedRevision: 0, currentRevision: 1 }] });
    await sleep(PAST_ONE_SECOND);
    const stale = await c.commit({ checks: [check('chk', 'brief', 1)], operations: [put('chk', 'w3', 1)] });
    expect(stale).toMatchObject({ __typename: 'CommitConflict', conflicts: [{ index: 0, key: 'brief', expectedRevision: 1, currentRevision: null }] });
    expect(await c.get('chk', 'w3')).toBeNull();
    const absent = await c.commit({ checks: [check('chk', 'brief', 0)], operations: [put('chk', 'w3', 1)] });
    expect(absent.__typename).toBe('CommitSuccess');
  });

  it('on a live record: its revision passes, any other fails with currentRevision', async () => {
    await c.put({ namespace: 'chk', key: 'live', value: 1 });
    await c.put({ namespace: 'chk', key: 'live', value: 2 });
    for (const wrong of [0, 1, 3]) {
      const res = await c.commit({ checks: [check('chk', 'live', wrong)], operations: [put('chk', 'w4', wrong)] });
      expect(res).toMatchObject({ __typename: 'CommitConflict', conflicts: [{ index: 0, key: 'live', expectedRevision: wrong, currentRevision: 2 }] });
    }
    expect(await c.get('chk', 'w4')).toBeNull();
    expect((await c.commit({ checks: [check('chk', 'live', 2)], operations: [put('chk', 'w4', 2)] })).__typename).toBe('CommitSuccess');
  });

  it('on a key the same commit writes: the check sees the state before the commit', async () => {
    await c.put({ namespace: 'chk', key: 'own', value: 'a' });
    await c.put({ namespace: 'chk', key: 'own', value: 'b' });
    const ok = await c.commit({ checks: [check('chk', 'own', 2)], operations: [put('chk', 'own', 'c')] });
    expect(ok).toMatchObject({ __typename: 'CommitSuccess', records: [{ key: 'own', value: 'c', revision: 3 }] });
    // Revision 4 is what the put would make; the check still sees 3.
    const ahead = await c.commit({ checks: [check('chk', 'own', 4)], operations: [put('chk', 'own', 'd')] });
    expect(ahead).toMatchObject({ __typename: 'CommitConflict', conflicts: [{ key: 'own', expectedRevision: 4, currentRevision: 3 }] });
    const created = await c.commit({ checks: [check('chk', 'fresh', 0)], operations: [inc('chk', 'fresh', 5)] });
    expect(created).toMatchObject({ __typename: 'CommitSuccess', records: [{ key: 'fresh', value: 5, revision: 1 }] });
    const deleted = await c.commit({ checks: [check('chk', 'fresh', 1)], operations: [del('chk', 'fresh')] });
    expect(deleted).toMatchObject({ __typename: 'CommitSuccess', records: [null] });
    // After the delete a check that the key is live fails, and one that it is absent passes.
    expect(await c.commit({ checks: [check('chk', 'fresh', 1)], operations: [put('chk', 'fresh', 1)] })).toMatchObject({
      __typename: 'CommitConflict',
      conflicts: [{ key: 'fresh', expectedRevision: 1, currentRevision: null }],
    });
    expect(await c.get('chk', 'own')).toMatchObject({ value: 'c', revision: 3 });
  });

  it('a conflict lists every failed check in input order, and nothing is written', async () => {
    const d = await commitClient(t);
    await d.put({ namespace: 'n1', key: 'a', value: 1 });
    await d.put({ namespace: 'n1', key: 'b', value: 1 });
    await d.put({ namespace: 'n1', key: 'b', value: 2 });
    await d.put({ namespace: 'n2', key: 'a', value: 1 });
    await expectRefusedUnchanged(d, ['n1', 'n2'], async () => {
      const res = await d.commit({
        checks: [check('n1', 'a', 1), check('n1', 'missing', 1), check('n1', 'b', 2), check('n1', 'b', 1), check('n2', 'a', 0), check('n2', 'b', 0), check('n1', 'a', 7)],
        operations: [put('n1', 'a', 'new'), del('n1', 'b'), inc('n2', 'c', 1)],
      });
      expect(res).toEqual({
        __typename: 'CommitConflict',
        code: 'REVISION_MISMATCH',
        message: expect.any(String),
        conflicts: [
          { index: 1, namespace: 'n1', key: 'missing', expectedRevision: 1, currentRevision: null },
          { index: 3, namespace: 'n1', key: 'b', expectedRevision: 1, currentRevision: 2 },
          { index: 4, namespace: 'n2', key: 'a', expectedRevision: 0, currentRevision: 1 },
          { index: 6, namespace: 'n1', key: 'a', expectedRevision: 7, currentRevision: 1 },
        ],
      });
    });
  });

  it('a negative check revision is a GraphQL error BAD_USER_INPUT and writes nothing', async () => {
    const res = await c.commitRaw({ checks: [check('chk', 'neg', -1)], operations: [put('chk', 'neg', 1)] });
    expect(errorOf(res).extensions.code).toBe('BAD_USER_INPUT');
    expect(await c.get('chk', 'neg')).toBeNull();
  });
});

describe('atomicity: a failing operation at any index writes nothing', () => {
  /** Five operations over two namespaces; the one at `at` fails in the given way. */
  const failing: Record<string, (at: number) => OperationInput> = {
    'an increment of a string (valueType)': (at) => inc('a', 'str', at),
    'a schema failure': (at) => put('typed', `bad-${at}`, 1_000),
    'a value over the size limit': (at) => put('a', `huge-${at}`, 'x'.repeat(70_000)),
    'a malformed key': (at) => put('b', `bad\u0001${at}`, 1),
  };
  for (const [what, make] of Object.entries(failing)) {
    for (const at of [0, 2, 4]) {
      it(`${what} at index ${at}`, async () => {
        const c = await commitClient(t);
        await setSchema(t, c.install, 'typed', { type: 'number', maximum: 10 });
        await c.put({ namespace: 'a', key: 'str', value: 'text' });
        await c.put({ namespace: 'a', key: 'gone', value: { big: 'y'.repeat(100) } });
        await c.put({ namespace: 'b', key: 'n', value: 5, metadata: { m: 1 } });
        const good = [put('a', 'new', { v: 1 }), del('a', 'gone'), inc('b', 'n', 2), put('b', 'other', [1, 2]), put('typed', 'ok', 3)];
        const ops = [...good];
        ops.splice(at, 1, make(at));
        await expectRefusedUnchanged(c, ['a', 'b', 'typed'], async () => {
          const res = await c.commit({ operations: ops });
          expect(['LimitExceeded', 'ValidationFailed']).toContain(res.__typename);
          if (res.__typename === 'LimitExceeded') expect(res.itemIndex).toBe(at);
        });
        expect(await c.get('a', 'gone')).toMatchObject({ revision: 1 });
        expect(await c.get('b', 'n')).toMatchObject({ value: 5, revision: 1 });
      });
    }
  }
});

describe('results and audit', () => {
  it('one record per operation in order, null for a delete, committed true, revisions counted per key', async () => {
    const c = await commitClient(t);
    await c.put({ namespace: 'r1', key: 'existing', value: 'old', metadata: { keep: false } });
    await c.put({ namespace: 'r1', key: 'existing', value: 'old2' });
    await c.put({ namespace: 'r2', key: 'counter', value: 10, metadata: { unit: 'items' } });
    await c.put({ namespace: 'r2', key: 'doomed', value: 'bye' });
    const res = await c.commit({
      operations: [
        put('r1', 'existing', { v: 3 }, { metadata: { note: 'x' }, ttlSeconds: 3600 }),
        del('r2', 'doomed'),
        put('r1', 'created', 'hello'),
        inc('r2', 'counter', -4),
        del('r2', 'never-existed'),
        inc('r3', 'fresh', 2.5),
      ],
    });
    expect(res.__typename).toBe('CommitSuccess');
    expect(res.committed).toBe(true);
    expect(res.records).toHaveLength(6);
    expect(res.records[0]).toMatchObject({ namespace: 'r1', key: 'existing', value: { v: 3 }, metadata: { note: 'x' }, revision: 3 });
    expect(Date.parse(res.records[0].ttlExpiresAt) - Date.parse(res.records[0].updatedAt)).toBe(3_600_000);
    expect(res.records[1]).toBeNull();
    expect(res.records[2]).toMatchObject({ namespace: 'r1', key: 'created', value: 'hello', metadata: {}, revision: 1, ttlExpiresAt: null });
    expect(res.records[3]).toMatchObject({ namespace: 'r2', key: 'counter', value: 6, metadata: { unit: 'items' }, revision: 2, ttlExpiresAt: null });
    expect(res.records[4]).toBeNull();
    expect(res.records[5]).toMatchObject({ namespace: 'r3', key: 'fresh', value: 2.5, metadata: {}, revision: 1 });

    // What the commit answered is what is stored.
    expect(await c.get('r1', 'existing')).toMatchObject({ value: { v: 3 }, revision: 3 });
    expect(await c.get('r2', 'doomed')).toBeNull();
    expect(await c.get('r2', 'counter')).toMatchObject({ value: 6, revision: 2 });
    expect(await c.get('r3', 'fresh')).toMatchObject({ value: 2.5, revision: 1 });
    const state = await c.state();
    const expectedBytes = storedBytes({ v: 3 }, { note: 'x' }) + storedBytes('hello') + storedBytes(6, { unit: 'items' }) + storedBytes(2.5);
    expect(state.usage).toEqual({ namespaces: 3, keys: 4, bytes: expectedBytes });
  });

  it('one audit event per changed record with operation "commit"; a delete of an absent key records nothing', async () => {
    const c = await commitClient(t);
    await c.put({ namespace: 'au', key: 'gone', value: 'g' });
    await c.put({ namespace: 'au', key: 'upd', value: 1 });
    const before = await auditEvents(t, c.install);
    const res = await c.commit({
      operations: [del('au', 'gone'), put('au', 'upd', 22), del('au', 'absent'), inc('au2', 'n', 1), put('au2', 'new', 'v')],
    });
    expect(res.__typename).toBe('CommitSuccess');
    const after = await auditEvents(t, c.install);
    const added = after.slice(0, after.length - before.length);
    expect(after.slice(added.length)).toEqual(before);
    const byKey = [...added].sort((a, b) => `${a.namespace}/${a.key}`.localeCompare(`${b.namespace}/${b.key}`));
    expect(byKey.map((e) => ({ operation: e.operation, namespace: e.namespace, key: e.key, revision: e.revision, bytesDelta: e.bytesDelta }))).toEqual([
      { operation: 'commit', namespace: 'au', key: 'gone', revision: null, bytesDelta: -storedBytes('g') },
      { operation: 'commit', namespace: 'au', key: 'upd', revision: 2, bytesDelta: storedBytes(22) - storedBytes(1) },
      { operation: 'commit', namespace: 'au2', key: 'n', revision: 1, bytesDelta: storedBytes(1) },
      { operation: 'commit', namespace: 'au2', key: 'new', revision: 1, bytesDelta: storedBytes('v') },
    ]);
  });

  it('a commit of only deletes of absent keys succeeds and records nothing', async () => {
    const c = await commitClient(t);
    const before = await auditEvents(t, c.install);
    const res = await c.commit({ operations: [del('x', 'a'), del('y', 'b')] });
    expect(res).toMatchObject({ __typename: 'CommitSuccess', committed: true, records: [null, null] });
    expect(await auditEvents(t, c.install)).toEqual(before);
    expect((await c.state()).usage).toEqual({ namespaces: 0, keys: 0, bytes: 0 });
  });
});
