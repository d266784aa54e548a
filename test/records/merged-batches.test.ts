/**
 * Merged batches (migrations/010_merged_batches.ts): a batch of independent writes runs as one
 * write, and each request still gets exactly the answer, audit events and changes it would get
 * one at a time; a batch that is not independent, or whose merged call is refused, runs one
 * request at a time. The batch function is called directly here (both backends); the race tests
 * (revisions, quotas, TTL, the change feed) run through the combiner, which builds such batches.
 */
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app.js';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({});
});
afterAll(async () => {
  await t?.close();
});

type Op =
  | { kind: 'put'; key: string; value?: unknown; ifRevision?: number | null; namespace?: string }
  | { kind: 'delete'; key: string; ifRevision?: number | null; namespace?: string };

interface Answer {
  ok?: boolean;
  merged?: boolean;
  error?: string;
  quota?: string;
  seq?: number;
  swept?: number;
  results?: Array<{ revision?: number; deleted?: boolean }>;
  usage?: { namespaces: [number, number]; bytes: [number, number]; keys: Record<string, [number, number]> };
}

const QUOTA = { namespaces: 10, keys: 100, bytes: 1_000_000 };

function request(n: number, ops: Op[], extra: Record<string, unknown> = {}) {
  return {
    operation: `op-${n}`,
    actor: `actor-${n}`,
    requestId: `req-${n}`,
    sweep: 10,
    auditRetentionSeconds: 86_400,
    changesRetentionSeconds: 86_400,
    quota: QUOTA,
    schemas: [],
    invalid: false,
    checks: [],
    dryRun: false,
    probe: false,
    bound: 1e15,
    ops: ops.map((op) => {
      const namespace = op.namespace ?? 'ns';
      if (op.kind === 'delete') return { kind: 'delete', namespace, key: op.key, ifRevision: op.ifRevision ?? null };
      const value = op.value ?? 1;
      const valueBytes = JSON.stringify(value).length;
      return { kind: 'put', namespace, key: op.key, ifRevision: op.ifRevision ?? null, value, metadata: {}, valueBytes, metadataBytes: 2, ttlSeconds: null, schemaVersion: null };
    }),
    ...extra,
  };
}

async function batch(install: { tenantId: string; id: string }, requests: object[]): Promise<Answer[]> {
  const { rows } = await sql<{ result: Answer[] }>`
    SELECT ext_storage_write_batch_v1(${install.tenantId}::uuid, ${install.id}::uuid, ${JSON.stringify(requests)}::jsonb) AS result`.execute(t.database.handle.db);
  return rows[0]!.result;
}

async function changes(install: { tenantId: string; id: string }) {
  const { rows } = await sql<{ seq: string; key: string; operation: string; actor: string }>`
    SELECT seq, key, operation, actor FROM ext_storage_changes
     WHERE tenant_id = ${install.tenantId}::uuid AND install_id = ${install.id}::uuid ORDER BY seq`.execute(t.database.handle.db);
  return rows.map((r) => ({ ...r, seq: Number(r.seq) }));
}

async function audit(install: { tenantId: string; id: string }) {
  const { rows } = await sql<{ key: string; operation: string; actor: string; request_id: string | null }>`
    SELECT key, operation, actor, request_id FROM ext_storage_audit
     WHERE tenant_id = ${install.tenantId}::uuid AND install_id = ${install.id}::uuid AND key IS NOT NULL ORDER BY id`.execute(t.database.handle.db);
  return rows;
}

async function keys(install: { tenantId: string; id: string }): Promise<string[]> {
  const { rows } = await sql<{ key: string }>`
    SELECT key FROM ext_storage_records WHERE tenant_id = ${install.tenantId}::uuid AND install_id = ${install.id}::uuid ORDER BY key`.execute(
    t.database.handle.db,
  );
  return rows.map((r) => r.key);
}

describe('a batch of independent writes runs as one write', () => {
  it('answers each request its own results and feed position; audit events and changes keep their own actor, operation and request id', async () => {
    const install = await t.createInstall();
    await batch(install, [request(0, [{ kind: 'put', key: 'old' }])]);
    const answers = await batch(install, [
      request(1, [{ kind: 'put', key: 'a' }]),
      request(2, [{ kind: 'delete', key: 'missing' }]),
      request(3, [
        { kind: 'put', key: 'b' },
        { kind: 'put', key: 'old', ifRevision: 1 },
      ]),
      request(4, [{ kind: 'delete', key: 'zz-none' }]),
    ]);
    expect(answers.map((a) => a.merged)).toEqual([true, true, true, true]);
    expect(answers.map((a) => a.results)).toEqual([
      [expect.objectContaining({ revision: 1 })],
      [{ deleted: false }],
      [expect.objectContaining({ revision: 1 }), expect.objectContaining({ revision: 2 })],
      [{ deleted: false }],
    ]);
    // The feed position just after each request's own changes: request 2 changed nothing.
    expect(answers.map((a) => a.seq)).toEqual([2, 2, 4, 4]);
    expect(await changes(install)).toEqual([
      { seq: 1, key: 'old', operation: 'put', actor: 'actor-0' },
      { seq: 2, key: 'a', operation: 'put', actor: 'actor-1' },
      { seq: 3, key: 'b', operation: 'put', actor: 'actor-3' },
      { seq: 4, key: 'old', operation: 'put', actor: 'actor-3' },
    ]);
    expect(await audit(install)).toEqual([
      { key: 'old', operation: 'op-0', actor: 'actor-0', request_id: 'req-0' },
      { key: 'a', operation: 'op-1', actor: 'actor-1', request_id: 'req-1' },
      { key: 'b', operation: 'op-3', actor: 'actor-3', request_id: 'req-3' },
      { key: 'old', operation: 'op-3', actor: 'actor-3', request_id: 'req-3' },
    ]);
    // The batch's usage move is answered once (quota-pressure metrics see it once).
    expect(answers[0]!.usage).toMatchObject({ namespaces: [1, 1], keys: { ns: [1, 3] } });
    expect(answers[1]!.usage).toEqual({ namespaces: [1, 1], bytes: [answers[0]!.usage!.bytes[1], answers[0]!.usage!.bytes[1]], keys: {} });
    await t.database.assertCountersConsistent();
  });

  it('answers the same as one request at a time would (a twin install runs the same requests alone)', async () => {
    const merged = await t.createInstall();
    const alone = await t.createInstall();
    const setup = [request(0, [{ kind: 'put', key: 'x', value: 'xxxxxxxx' }, { kind: 'put', key: 'y' }])];
    await batch(merged, setup);
    await batch(alone, setup);
    const requests = [
      request(1, [{ kind: 'put', key: 'x', value: 'short', ifRevision: 1 }]),
      request(2, [{ kind: 'delete', key: 'y', ifRevision: 1 }]),
      request(3, [{ kind: 'put', key: 'z', value: { deep: [1, 2, 3] }, ifRevision: 0 }]),
    ];
    const together = await batch(merged, requests);
    expect(together.every((a) => a.merged)).toBe(true);
    const oneByOne: Answer[] = [];
    for (const r of requests) oneByOne.push(...(await batch(alone, [r])));
    const shape = (a: Answer) => ({ ok: a.ok, seq: a.seq, results: a.results!.map((r) => ('deleted' in r ? r : { revision: r.revision })) });
    expect(together.map(shape)).toEqual(oneByOne.map(shape));
    expect(await keys(merged)).toEqual(await keys(alone));
    const strip = (rows: Array<{ seq: number }>) => rows.map(({ seq, ...rest }) => ({ seq, ...rest }));
    expect(strip(await changes(merged))).toEqual(strip(await changes(alone)));
    await t.database.assertCountersConsistent();
  });

  it('a record named again starts the next run: each run merged, the later write sees the earlier', async () => {
    const install = await t.createInstall();
    const answers = await batch(install, [
      request(1, [{ kind: 'put', key: 'a' }]),
      request(2, [{ kind: 'put', key: 'b' }]),
      request(3, [{ kind: 'put', key: 'a', ifRevision: 1 }]),
      request(4, [{ kind: 'put', key: 'c' }]),
      request(5, [{ kind: 'put', key: 'a', ifRevision: 2 }]),
    ]);
    expect(answers.map((a) => a.merged)).toEqual([true, true, true, true, undefined]);
    expect(answers.map((a) => a.results![0]!.revision)).toEqual([1, 1, 2, 1, 3]);
    expect(answers.map((a) => a.seq)).toEqual([1, 2, 3, 4, 5]);
    expect((await changes(install)).map((c) => `${c.key}@${c.actor}`)).toEqual(['a@actor-1', 'b@actor-2', 'a@actor-3', 'c@actor-4', 'a@actor-5']);
    await t.database.assertCountersConsistent();
  });
});

describe('a batch that is not independent runs one request at a time', () => {
  it('the same record twice: not merged; the second sees the first', async () => {
    const install = await t.createInstall();
    const answers = await batch(install, [request(1, [{ kind: 'put', key: 'k' }]), request(2, [{ kind: 'put', key: 'k', ifRevision: 1 }])]);
    expect(answers.map((a) => a.merged)).toEqual([undefined, undefined]);
    expect(answers.map((a) => a.results![0]!.revision)).toEqual([1, 2]);
  });

  it('a commit with checks, or a dry run, in the batch: not merged', async () => {
    const install = await t.createInstall();
    const withChecks = await batch(install, [
      request(1, [{ kind: 'put', key: 'a' }]),
      request(2, [{ kind: 'put', key: 'b' }], { checks: [{ namespace: 'ns', key: 'a', revision: 0 }] }),
    ]);
    expect(withChecks.map((a) => a.merged)).toEqual([undefined, undefined]);
    // Checked after request 1 applied: record a is at revision 1, not 0.
    expect(withChecks[1]).toMatchObject({ error: 'conflict' });
    const dry = await batch(install, [request(3, [{ kind: 'put', key: 'c' }]), request(4, [{ kind: 'put', key: 'd' }], { dryRun: true })]);
    expect(dry.map((a) => a.merged)).toEqual([undefined, undefined]);
    expect(await keys(install)).toEqual(['a', 'c']);
  });

  it('a refused request: the merged call changes nothing, and only that request is refused', async () => {
    const install = await t.createInstall();
    await batch(install, [request(0, [{ kind: 'put', key: 'base' }])]);
    const answers = await batch(install, [
      request(1, [{ kind: 'put', key: 'a' }]),
      request(2, [{ kind: 'put', key: 'base', ifRevision: 7 }]),
      request(3, [{ kind: 'put', key: 'b' }]),
    ]);
    expect(answers.map((a) => a.merged)).toEqual([undefined, undefined, undefined]);
    expect(answers.map((a) => a.ok ?? a.error)).toEqual([true, 'revision', true]);
    expect(answers.map((a) => a.seq)).toEqual([2, undefined, 3]);
    expect(await keys(install)).toEqual(['a', 'b', 'base']);
    expect((await changes(install)).map((c) => c.key)).toEqual(['base', 'a', 'b']);
    await t.database.assertCountersConsistent();
  });
});

describe('quotas are decided in arrival order', () => {
  async function full(quota: Partial<typeof QUOTA>, ops: Op[]) {
    const install = await t.createInstall();
    await batch(install, [request(0, ops, { quota: { ...QUOTA, ...quota } })]);
    return install;
  }

  it('keys: a new key before a delete is refused, though the batch as a whole adds none', async () => {
    const quota = { ...QUOTA, keys: 3 };
    const install = await full(quota, [{ kind: 'put', key: 'a' }, { kind: 'put', key: 'b' }, { kind: 'put', key: 'c' }]);
    const answers = await batch(install, [
      request(1, [{ kind: 'put', key: 'd' }], { quota }),
      request(2, [{ kind: 'delete', key: 'a' }], { quota }),
    ]);
    expect(answers.map((a) => a.merged)).toEqual([undefined, undefined]);
    expect(answers[0]).toMatchObject({ error: 'quota', quota: 'keysPerNamespace' });
    expect(answers[1]).toMatchObject({ ok: true, results: [{ deleted: true }] });
    expect(await keys(install)).toEqual(['b', 'c']);
    await t.database.assertCountersConsistent();
  });

  it('keys: after the delete, the new key fits (the same two requests, the other way round)', async () => {
    const quota = { ...QUOTA, keys: 3 };
    const install = await full(quota, [{ kind: 'put', key: 'a' }, { kind: 'put', key: 'b' }, { kind: 'put', key: 'c' }]);
    const answers = await batch(install, [
      request(1, [{ kind: 'delete', key: 'a' }], { quota }),
      request(2, [{ kind: 'put', key: 'd' }], { quota }),
    ]);
    expect(answers.map((a) => a.ok)).toEqual([true, true]);
    expect(await keys(install)).toEqual(['b', 'c', 'd']);
  });

  it('bytes: a growing value before a shrinking one is refused, though the batch as a whole grows nothing', async () => {
    const big = 'x'.repeat(200);
    const install = await full({}, [{ kind: 'put', key: 'small', value: 's' }, { kind: 'put', key: 'big', value: big }]);
    const { rows } = await sql<{ bytes: string }>`
      SELECT sum(value_bytes + metadata_bytes) AS bytes FROM ext_storage_records WHERE tenant_id = ${install.tenantId}::uuid AND install_id = ${install.id}::uuid`.execute(
      t.database.handle.db,
    );
    const quota = { ...QUOTA, bytes: Number(rows[0]!.bytes) };
    const answers = await batch(install, [
      request(1, [{ kind: 'put', key: 'small', value: big }], { quota }),
      request(2, [{ kind: 'put', key: 'big', value: 's' }], { quota }),
    ]);
    expect(answers.map((a) => a.merged)).toEqual([undefined, undefined]);
    expect(answers[0]).toMatchObject({ error: 'quota', quota: 'bytes' });
    expect(answers[1]).toMatchObject({ ok: true });
    await t.database.assertCountersConsistent();
  });

  it('namespaces: a new namespace before the last key of another goes is refused', async () => {
    const quota = { ...QUOTA, namespaces: 1 };
    const install = await full(quota, [{ kind: 'put', key: 'only', namespace: 'one' }]);
    const answers = await batch(install, [
      request(1, [{ kind: 'put', key: 'k', namespace: 'two' }], { quota }),
      request(2, [{ kind: 'delete', key: 'only', namespace: 'one' }], { quota }),
    ]);
    expect(answers[0]).toMatchObject({ error: 'quota', quota: 'namespaces' });
    expect(answers[1]).toMatchObject({ ok: true, results: [{ deleted: true }] });
    await t.database.assertCountersConsistent();
  });

  it('within every quota with room to spare: merged', async () => {
    const quota = { ...QUOTA, keys: 5 };
    const install = await full(quota, [{ kind: 'put', key: 'a' }]);
    const answers = await batch(install, [
      request(1, [{ kind: 'put', key: 'b' }], { quota }),
      request(2, [{ kind: 'delete', key: 'a' }], { quota }),
      request(3, [{ kind: 'put', key: 'c' }], { quota }),
    ]);
    expect(answers.map((a) => a.merged)).toEqual([true, true, true]);
    expect(await keys(install)).toEqual(['b', 'c']);
    await t.database.assertCountersConsistent();
  });
});

describe('random batches answer exactly as their requests one at a time', () => {
  it('200 batches of puts, deletes and stale revisions over few keys and tight quotas, on twin installs', async () => {
    const merged = await t.createInstall();
    const alone = await t.createInstall();
    // Every other batch under tight quotas (they are hit, and the merged call often goes one at a time), the others roomy.
    const tight = { namespaces: 2, keys: 3, bytes: 500 };
    const roomy = { namespaces: 3, keys: 100, bytes: 100_000 };
    let seed = 12345;
    const random = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const shape = (a: Answer) =>
      a.ok
        ? { ok: true, seq: a.seq, results: a.results!.map((r) => ('deleted' in r ? { deleted: r.deleted } : { revision: r.revision })) }
        : { error: a.error, quota: a.quota ?? null };
    let mergedAnswers = 0;
    for (let b = 0; b < 200; b++) {
      const requests = Array.from({ length: 1 + random(6) }, (_, n) => {
        const ops: Op[] = [];
        const used = new Set<string>();
        for (let o = 0; o <= random(2); o++) {
          const namespace = ['a', 'b', 'c'][random(3)]!;
          const key = `k${random(6)}`;
          if (used.has(`${namespace}/${key}`)) continue;
          used.add(`${namespace}/${key}`);
          const ifRevision = random(12) === 0 ? random(3) : null;
          ops.push(random(3) === 0 ? { kind: 'delete', namespace, key, ifRevision } : { kind: 'put', namespace, key, ifRevision, value: 'v'.repeat(random(120)) });
        }
        return request(b * 10 + n, ops, { quota: b % 2 === 0 ? tight : roomy });
      });
      const together = await batch(merged, requests);
      mergedAnswers += together.filter((a) => a.merged).length;
      const oneByOne: Answer[] = [];
      for (const r of requests) oneByOne.push(...(await batch(alone, [r])));
      expect(together.map(shape), `batch ${b}`).toEqual(oneByOne.map(shape));
    }
    // The runs did go merged, often: the comparison is not only of the one-at-a-time path with itself.
    expect(mergedAnswers).toBeGreaterThan(100);
    const stored = async (install: { tenantId: string; id: string }) =>
      (
        await sql<{ namespace: string; key: string; revision: number; value: unknown }>`
          SELECT namespace, key, revision, value FROM ext_storage_records
           WHERE tenant_id = ${install.tenantId}::uuid AND install_id = ${install.id}::uuid ORDER BY namespace, key`.execute(t.database.handle.db)
      ).rows;
    expect(await stored(merged)).toEqual(await stored(alone));
    const strip = (rows: Array<{ seq: number; key: string; operation: string }>) => rows.map(({ seq, key, operation }) => ({ seq, key, operation }));
    expect(strip(await changes(merged))).toEqual(strip(await changes(alone)));
    await t.database.assertCountersConsistent();
  });
});
