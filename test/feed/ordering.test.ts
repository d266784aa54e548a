/**
 * The feed's order under concurrency (docs/api.md, "Change feed", Order; docs/change-feed.md):
 * eight writers (puts, deletes, commits, bulk puts, increments) race a consumer that pages as fast
 * as it can, following endCursor. The consumer must see every committed change exactly once (after
 * dedupe by cursor), nothing skipped even when a transaction that started earlier commits later,
 * and each key's changes in the order they committed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dataOf, startTestApp, type TestApp } from '../support/app.js';
import { extensionClient, type ExtensionClient } from '../records/client.js';
import { COMMIT, changesPage, drain, type ChangeNode } from './client.js';

let t: TestApp;

beforeAll(async () => {
  t = await startTestApp();
});

afterAll(async () => {
  await t?.close();
});

const WRITERS = 8;
const OPS_PER_WRITER = 12;
const ROUNDS = 10;
const NAMESPACES = ['alpha', 'beta'];
const KEYS = ['k0', 'k1', 'k2', 'k3', 'k4', 'k5'];

/** What the writers were told committed: the PUT changes exactly, and how many deletes removed a record per key. */
interface Expected {
  puts: string[];
  deletes: Map<string, number>;
}

const id = (ns: string, key: string) => `${ns}/${key}`;

/** A small deterministic generator per writer and round, so a failure can be replayed. */
function rng(seed: number) {
  let s = seed >>> 0 || 1;
  return (n: number) => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) % n;
  };
}

async function writer(c: ExtensionClient, seed: number, expected: Expected): Promise<void> {
  const pick = rng(seed);
  const ns = () => NAMESPACES[pick(NAMESPACES.length)]!;
  const key = () => KEYS[pick(KEYS.length)]!;
  for (let i = 0; i < OPS_PER_WRITER; i++) {
    switch (pick(5)) {
      case 0: {
        const r = await c.put({ namespace: ns(), key: key(), value: { seed, i } });
        expect(r.__typename).toBe('PutRecordSuccess');
        expected.puts.push(`PUT ${id(r.record.namespace, r.record.key)} ${r.record.revision}`);
        break;
      }
      case 1: {
        const n = ns();
        const k = key();
        const r = await c.del({ namespace: n, key: k });
        expect(r.__typename).toBe('DeleteRecordSuccess');
        if (r.deleted) expected.deletes.set(id(n, k), (expected.deletes.get(id(n, k)) ?? 0) + 1);
        break;
      }
      case 2: {
        // Across both namespaces, so its changes interleave with others' only if adjacency broke.
        const a = key();
        const b = key();
        const res = await c.gql(COMMIT, {
          input: {
            operations: [
              { put: { namespace: 'alpha', key: a, value: { seed, i, commit: true } } },
              { put: { namespace: 'beta', key: b, value: { seed, i, commit: true } } },
              { increment: { namespace: 'alpha', key: 'counter', by: 1 } },
            ],
          },
        });
        const r = dataOf(res).commit;
        expect(r.__typename).toBe('CommitSuccess');
        for (const rec of r.records) expected.puts.push(`PUT ${id(rec.namespace, rec.key)} ${rec.revision}`);
        break;
      }
      case 3: {
        const n = ns();
        const keys = [...new Set([key(), key(), key()])];
        const r = await c.bulk(n, keys.map((k) => ({ key: k, value: { seed, i, bulk: true } })));
        expect(r.__typename).toBe('BulkPutRecordsSuccess');
        for (const rec of r.records) expected.puts.push(`PUT ${id(rec.namespace, rec.key)} ${rec.revision}`);
        break;
      }
      default: {
        const res = await c.gql(
          `mutation Inc($input: IncrementRecordInput!) { incrementRecord(input: $input) { __typename ... on PutRecordSuccess { record { namespace key revision } } } }`,
          { input: { namespace: 'beta', key: 'counter', by: 1 } },
        );
        const r = dataOf(res).incrementRecord;
        expect(r.__typename).toBe('PutRecordSuccess');
        expected.puts.push(`PUT ${id(r.record.namespace, r.record.key)} ${r.record.revision}`);
      }
    }
  }
}

/**
 * Per key, the changes must tell one consistent history: a PUT writes the revision after the
 * previous PUT (1 after a DELETE or EXPIRE, or for a new key), a DELETE removes the revision the
 * last PUT wrote. Any reordering within a key breaks this chain.
 */
function expectHistoriesInOrder(changes: ChangeNode[]): void {
  const last = new Map<string, number | null>();
  for (const c of changes) {
    const k = id(c.namespace, c.key);
    const before = last.get(k) ?? null;
    if (c.operation === 'PUT') {
      expect(c.revision, `${k}: PUT after revision ${before}`).toBe(before === null ? 1 : before + 1);
      last.set(k, c.revision);
    } else {
      expect(c.revision, `${k}: ${c.operation} of the live revision`).toBe(before);
      last.set(k, null);
    }
  }
}

describe('changes under concurrent writers', () => {
  it(`a consumer paging during ${WRITERS} concurrent writers sees every change once, nothing skipped, each key in commit order (${ROUNDS} rounds)`, async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const c = await extensionClient(t);
      const expected: Expected = { puts: [], deletes: new Map() };
      let writing = true;
      const writers = Promise.all(Array.from({ length: WRITERS }, (_, w) => writer(c, round * 1000 + w + 1, expected))).finally(() => {
        writing = false;
      });

      // The consumer: pages of 50 as fast as it can while the writers run, following endCursor.
      const seen = new Map<string, ChangeNode>();
      const inOrder: ChangeNode[] = [];
      let after: string | null = null;
      let pages = 0;
      const take = (nodes: ChangeNode[]) => {
        for (const n of nodes) {
          if (seen.has(n.cursor)) continue; // at least once: dedupe by cursor
          seen.set(n.cursor, n);
          inOrder.push(n);
        }
      };
      while (writing) {
        const page = await changesPage(c.gql, { after, first: 50 });
        take(page.edges.map((e) => e.node));
        after = page.pageInfo.endCursor;
        pages++;
      }
      await writers;
      // Then to the end: whatever committed after the consumer's last page.
      const rest = await drain(c.gql, { after, first: 50 });
      take(rest.changes);

      expect(pages, 'the consumer paged while the writers ran').toBeGreaterThan(1);
      const puts = inOrder.filter((n) => n.operation === 'PUT').map((n) => `PUT ${id(n.namespace, n.key)} ${n.revision}`);
      expect(puts.slice().sort(), `round ${round}: every committed put, exactly once`).toEqual(expected.puts.slice().sort());
      const deletes = new Map<string, number>();
      for (const n of inOrder) if (n.operation === 'DELETE') deletes.set(id(n.namespace, n.key), (deletes.get(id(n.namespace, n.key)) ?? 0) + 1);
      expect(deletes, `round ${round}: every delete that removed a record, exactly once`).toEqual(expected.deletes);
      expect(inOrder.every((n) => n.actor === `ext-${c.install.id.slice(0, 8)}`)).toBe(true);
      expectHistoriesInOrder(inOrder);

      // The feed read in one go afterwards is the same sequence the racing consumer assembled.
      const whole = await drain(c.gql, { first: 1000 });
      expect(whole.changes.map((n) => n.cursor)).toEqual(inOrder.map((n) => n.cursor));

      // A commit's changes are adjacent: its three operations follow each other with nothing between.
      for (let i = 0; i < whole.changes.length; i++) {
        const n = whole.changes[i]!;
        if (n.namespace === 'alpha' && n.key === 'counter') {
          // The commit's increment is its last operation: the two puts before it belong to it.
          const [a, b] = [whole.changes[i - 2]!, whole.changes[i - 1]!];
          expect([a.namespace, b.namespace]).toEqual(['alpha', 'beta']);
          expect(a.operation).toBe('PUT');
          expect(b.operation).toBe('PUT');
        }
      }
    }
  });
});
