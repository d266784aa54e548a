/**
 * Property-based tests: random sequences of concurrent writes and reads through all three doors,
 * across installs of two tenants (some with small quotas), checked against the in-memory model
 * of ./model.ts. Seeds are fixed; ./replay.ts says how to replay a failure.
 */
import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { QuotaSettings } from '../../src/config.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { assertProperty } from './replay.js';
import { DOORS, Gateway, type Actor, type Door, type Observed, type Outcome } from './gateway.js';
import {
  byteOrder,
  cloneWorld,
  emptyWorld,
  expectationDiff,
  expectOf,
  observedOf,
  outcomeDiff,
  permutations,
  recordDiff,
  recordOf,
  removeRecord,
  usageOf,
  worldKey,
  type ModelCommand,
  type ModelLimits,
  type World,
  type WriteItem,
} from './model.js';

const SEED = 0x5eed_2026;
const check = <T>(property: fc.IAsyncProperty<T>, numRuns: number) => assertProperty(property, numRuns, SEED);

// ---------------------------------------------------------------------------------- the world

const NAMESPACES = ['alpha', 'beta', 'gamma'];
const KEYS = ['a', 'b', 'c', 'd', 'e', 'f', 'a/1', 'a/2', 'Z', 'x y', 'ü', '日本'];
const BAD_KEYS = ['bad\u0001key', 'k'.repeat(257), '', 'tab\there'];

/** Quota overrides of the four installs: tenant A holds 0 and 1, tenant B holds 2 and 3. */
const QUOTA_OVERRIDES: Array<Partial<QuotaSettings> | undefined> = [
  undefined,
  { maxKeysPerNamespace: 5, maxBytes: 2000, maxNamespaces: 2, maxValueBytes: 1200 },
  { maxKeysPerNamespace: 3, maxBytes: 1500, maxNamespaces: 1 },
  undefined,
];
const TENANT_OF = [0, 0, 1, 1];

let t: TestApp;
let gw: Gateway;
let LIMITS: ModelLimits;
let QUOTAS: QuotaSettings[];

beforeAll(async () => {
  t = await startTestApp({ STORAGE_MIN_TTL_SECONDS: '1' });
  gw = new Gateway(t);
  const l = t.config.limits;
  LIMITS = { minTtl: l.minTtlSeconds, maxTtl: l.maxTtlSeconds, maxBulkItems: l.maxBulkItems, maxBulkBytes: l.maxBulkBytes };
  QUOTAS = QUOTA_OVERRIDES.map((o) => ({ ...t.config.quotaDefaults, ...(o ?? {}) }));
});
afterAll(async () => {
  await t?.close();
});

/** Fresh installs for one run: no state leaks from one run into the next. */
async function freshActors(): Promise<{ actors: Actor[]; tenants: string[] }> {
  const tenants = [randomUUID(), randomUUID()];
  const actors = await Promise.all(
    QUOTA_OVERRIDES.map(async (quota, index) => {
      const tenantId = tenants[TENANT_OF[index]!]!;
      const install = await t.createInstall({ tenantId, quota: quota as Record<string, number> | undefined });
      return { index, id: install.id, tenantId, extToken: await install.token(), adminToken: await t.adminToken(tenantId) };
    }),
  );
  return { actors, tenants };
}

// ---------------------------------------------------------------------------------- arbitraries

/** Strings jsonb can hold: no U+0000, no lone surrogates; object keys kept as own properties. */
function storable(v: unknown): unknown {
  if (typeof v === 'string') return v.replaceAll('\u0000', '').toWellFormed();
  if (Array.isArray(v)) return v.map(storable);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [storable(k), storable(x)]));
  // What JSON turns it into (-0 becomes 0).
  return JSON.parse(JSON.stringify(v));
}

const jsonArb = fc.jsonValue({ maxDepth: 2, stringUnit: 'grapheme' }).map(storable);
const valueArb = fc.oneof(
  { weight: 5, arbitrary: jsonArb.filter((v) => v !== null) },
  {
    weight: 3,
    arbitrary: fc
      .record({ n: fc.integer({ min: 50, max: 500 }), c: fc.constantFrom('x', 'é', '€') })
      .map(({ n, c }) => ({ blob: c.repeat(n) })),
  },
);
const metadataArb = fc.oneof(
  { weight: 3, arbitrary: fc.constant(undefined) },
  { weight: 2, arbitrary: fc.dictionary(fc.string({ maxLength: 6 }), fc.jsonValue({ maxDepth: 1 }), { maxKeys: 3 }).map(storable) },
);
const ttlArb = fc.oneof(
  { weight: 6, arbitrary: fc.constant(null) },
  { weight: 2, arbitrary: fc.constant(3600) },
  { weight: 1, arbitrary: fc.constant(2 * 86400) },
);

type IfRev = { t: 'none' } | { t: 'zero' } | { t: 'current' } | { t: 'off'; d: number } | { t: 'neg' };
const ifRevArb: fc.Arbitrary<IfRev> = fc.oneof(
  { weight: 24, arbitrary: fc.constant({ t: 'none' as const }) },
  { weight: 8, arbitrary: fc.constant({ t: 'zero' as const }) },
  { weight: 12, arbitrary: fc.constant({ t: 'current' as const }) },
  { weight: 8, arbitrary: fc.integer({ min: -2, max: 3 }).filter((d) => d !== 0).map((d) => ({ t: 'off' as const, d })) },
  { weight: 1, arbitrary: fc.constant({ t: 'neg' as const }) },
);

type Badness = 'none' | 'badKey' | 'badMeta' | 'bigMeta' | 'badTtl' | 'hugeValue';
interface ItemSpec {
  key: string;
  value: unknown;
  metadata: unknown;
  ttl: number | null;
  ifRev: IfRev;
  bad: Badness;
  badPick: number;
}

function itemArb(okWeight: number): fc.Arbitrary<ItemSpec> {
  return fc.record({
    key: fc.constantFrom(...KEYS),
    value: valueArb,
    metadata: metadataArb,
    ttl: ttlArb,
    ifRev: ifRevArb,
    bad: fc.oneof(
      { weight: okWeight, arbitrary: fc.constant('none' as const) },
      { weight: 1, arbitrary: fc.constantFrom<Badness>('badKey', 'badMeta', 'bigMeta', 'badTtl', 'hugeValue') },
    ),
    badPick: fc.nat(),
  });
}

/** The small-quota installs (1, 2) get most commands so their quotas are reached. */
const instArb = fc.oneof({ weight: 2, arbitrary: fc.constantFrom(0, 3) }, { weight: 3, arbitrary: fc.constantFrom(1, 2) });
const doorArb = fc.constantFrom<Door>(...DOORS);
const nsArb = fc.oneof(
  { weight: 20, arbitrary: fc.constant(NAMESPACES[0]!) },
  { weight: 10, arbitrary: fc.constantFrom(...NAMESPACES) },
  { weight: 1, arbitrary: fc.constant('Bad NS') },
);

type CmdSpec =
  | { t: 'put'; door: Door; inst: number; ns: string; item: ItemSpec }
  | { t: 'bulk'; door: Door; inst: number; ns: string; items: ItemSpec[] }
  | { t: 'del'; door: Door; inst: number; ns: string; key: string; ifRev: IfRev }
  | { t: 'get'; door: Door; inst: number; ns: string; key: string };

const cmdArb: fc.Arbitrary<CmdSpec> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ t: fc.constant('put' as const), door: doorArb, inst: instArb, ns: nsArb, item: itemArb(12) }) },
  {
    weight: 3,
    arbitrary: fc.record({
      t: fc.constant('bulk' as const),
      door: doorArb,
      inst: instArb,
      ns: nsArb,
      items: fc.oneof(
        { weight: 16, arbitrary: fc.uniqueArray(itemArb(25), { minLength: 1, maxLength: 5, selector: (i) => i.key }) },
        { weight: 3, arbitrary: fc.array(itemArb(25), { minLength: 2, maxLength: 5 }) },
        { weight: 1, arbitrary: fc.constant<ItemSpec[]>([]) },
      ),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      t: fc.constant('del' as const),
      door: doorArb,
      inst: instArb,
      ns: nsArb,
      key: fc.oneof({ weight: 20, arbitrary: fc.constantFrom(...KEYS) }, { weight: 1, arbitrary: fc.constantFrom(...BAD_KEYS) }),
      ifRev: ifRevArb,
    }),
  },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('get' as const), door: doorArb, inst: instArb, ns: nsArb, key: fc.constantFrom(...KEYS) }) },
);

interface SpySpec {
  x: number;
  y: number;
  ns: string;
  key: string;
}
const spyArb: fc.Arbitrary<SpySpec> = fc
  .record({ x: instArb, dy: fc.integer({ min: 1, max: QUOTA_OVERRIDES.length - 1 }), ns: fc.constantFrom(...NAMESPACES), key: fc.constantFrom(...KEYS) })
  .map(({ x, dy, ns, key }) => ({ x, y: (x + dy) % QUOTA_OVERRIDES.length, ns, key }));

type BatchSpec =
  | { t: 'ops'; cmds: CmdSpec[]; spy: SpySpec | null }
  | { t: 'expire'; inst: number; ns: string; keys: string[]; door: Door; value: unknown };

const batchArb: fc.Arbitrary<BatchSpec> = fc.oneof(
  { weight: 14, arbitrary: fc.record({ t: fc.constant('ops' as const), cmds: fc.array(cmdArb, { minLength: 1, maxLength: 5 }), spy: fc.option(spyArb, { freq: 2 }) }) },
  {
    weight: 1,
    arbitrary: fc.record({
      t: fc.constant('expire' as const),
      inst: instArb,
      ns: fc.constantFrom(...NAMESPACES),
      keys: fc.uniqueArray(fc.constantFrom(...KEYS), { minLength: 1, maxLength: 2 }),
      door: doorArb,
      value: valueArb,
    }),
  },
);

/** At most one real-time expiry per run keeps every run short. */
const sequenceArb = fc.array(batchArb, { minLength: 3, maxLength: 10 }).map((batches) => {
  let expiries = 0;
  return batches.filter((b) => b.t !== 'expire' || ++expiries <= 1);
});

// ---------------------------------------------------------------------------------- running

function resolveIfRev(w: World, ns: string, key: string, spec: IfRev): number | null {
  const current = recordOf(w, ns, key)?.revision ?? 0;
  switch (spec.t) {
    case 'none':
      return null;
    case 'zero':
      return 0;
    case 'current':
      return current;
    case 'off':
      return current + spec.d >= 1 ? current + spec.d : current + 1;
    case 'neg':
      return -1;
  }
}

function resolveItem(w: World, ns: string, spec: ItemSpec): WriteItem {
  const item: WriteItem = {
    key: spec.key,
    value: spec.value,
    ...(spec.metadata === undefined ? {} : { metadata: spec.metadata }),
    ttl: spec.ttl,
    ifRevision: resolveIfRev(w, ns, spec.key, spec.ifRev),
  };
  switch (spec.bad) {
    case 'badKey':
      item.key = BAD_KEYS[spec.badPick % BAD_KEYS.length]!;
      break;
    case 'badMeta':
      item.metadata = [[1], 'text', 7][spec.badPick % 3];
      break;
    case 'bigMeta':
      item.metadata = { note: 'm'.repeat(4100) };
      break;
    case 'badTtl':
      item.ttl = spec.badPick % 2 === 0 ? 0 : 30 * 86400 + 1;
      break;
    case 'hugeValue':
      item.value = { blob: 'h'.repeat(66_000) };
      break;
    case 'none':
      break;
  }
  return item;
}

function resolveCmd(w: World, spec: CmdSpec): ModelCommand {
  switch (spec.t) {
    case 'put':
      return { t: 'put', ns: spec.ns, ...resolveItem(w, spec.ns, spec.item) };
    case 'bulk':
      return { t: 'bulk', ns: spec.ns, items: spec.items.map((i) => resolveItem(w, spec.ns, i)) };
    case 'del':
      return { t: 'del', ns: spec.ns, key: spec.key, ifRevision: resolveIfRev(w, spec.ns, spec.key, spec.ifRev) };
    case 'get':
      return { t: 'get', ns: spec.ns, key: spec.key };
  }
}

function sendCmd(door: Door, actor: Actor, cmd: ModelCommand): Promise<Outcome> {
  const args = (i: WriteItem) => ({ key: i.key, value: i.value, metadata: i.metadata, ttlSeconds: i.ttl, ifRevision: i.ifRevision });
  switch (cmd.t) {
    case 'put':
      return gw.put(door, actor, { namespace: cmd.ns, ...args(cmd) });
    case 'bulk':
      return gw.bulk(door, actor, cmd.ns, cmd.items.map(args));
    case 'del':
      return gw.del(door, actor, { namespace: cmd.ns, key: cmd.key, ifRevision: cmd.ifRevision });
    case 'get':
      return gw.get(door, actor, cmd.ns, cmd.key);
  }
}

/** The gateway's answer to a command; an answer outside the contract (a 5xx, an unknown shape) fails at once. */
async function answerOf(door: Door, actor: Actor, cmd: ModelCommand): Promise<Outcome> {
  const answer = await sendCmd(door, actor, cmd);
  if (answer.kind === 'unexpected') throw new Error(`${describeCmd(door, actor.index, cmd)}: unexpected answer ${JSON.stringify(answer).slice(0, 1000)}`);
  return answer;
}

/** A short description of a command for failure messages (huge strings elided). */
function describeCmd(door: Door, inst: number, cmd: ModelCommand): string {
  const text = JSON.stringify(cmd, (_k, v) => (typeof v === 'string' && v.length > 40 ? `${v.slice(0, 12)}…(${v.length})` : v));
  return `[${door} #${inst}] ${text}`;
}

function describeWorld(w: World): string {
  return JSON.stringify(
    Object.fromEntries(
      Object.entries(w.ns).map(([ns, recs]) => [ns, Object.fromEntries(Object.entries(recs).map(([k, r]) => [k, { rev: r.revision, bytes: r.bytes, ttl: r.ttl }]))]),
    ),
  );
}

const MAX_WORLDS = 32;

/** Answer kinds seen (printed with FC_VERBOSE=1), to see what the generators actually reach. */
const seen = new Map<string, number>();
const tally = (what: string) => seen.set(what, (seen.get(what) ?? 0) + 1);


/**
 * The states one install may be in, narrowed by every answer seen. A batch of concurrent
 * commands is explained by some order of its commands; an observation keeps the worlds it fits.
 */
class Possible {
  worlds: World[] = [emptyWorld()];

  constructor(
    readonly inst: number,
    readonly quota: QuotaSettings,
  ) {}

  get first(): World {
    return this.worlds[0]!;
  }

  /** Keeps the worlds where some order of the batch yields exactly the answers seen. */
  explain(batch: Array<{ door: Door; cmd: ModelCommand; actual: Outcome }>): void {
    const next = new Map<string, World>();
    let why = '';
    for (const w of this.worlds) {
      for (const order of permutations(batch)) {
        const c = cloneWorld(w);
        let ok = true;
        for (const { cmd, actual } of order) {
          const e = expectOf(c, this.quota, LIMITS, cmd);
          const diff = expectationDiff(e, actual);
          if (diff !== null) {
            why ||= `${describeCmd('ext', this.inst, cmd)}: ${diff}`;
            ok = false;
            break;
          }
          e.commit?.(actual);
        }
        if (ok) next.set(worldKey(c), c);
      }
    }
    if (next.size === 0) {
      throw new Error(
        `install #${this.inst}: no order of the batch explains the answers.\n` +
          batch.map((b) => `  ${describeCmd(b.door, this.inst, b.cmd)}\n    → ${JSON.stringify(b.actual).slice(0, 400)}`).join('\n') +
          `\n  state before: ${this.worlds.map(describeWorld).join('\n   or: ')}\n  e.g. ${why.slice(0, 1500)}`,
      );
    }
    if (next.size > 1) tally(`ambiguous batch (${next.size} worlds)`);
    this.worlds = [...next.values()].slice(0, MAX_WORLDS);
  }

  /** Keeps the worlds where `fits` holds (null); fails with the first world's reason when none does. */
  observe(what: string, fits: (w: World) => string | null): void {
    const reasons = this.worlds.map(fits);
    const kept = this.worlds.filter((_, i) => reasons[i] === null);
    if (kept.length === 0) {
      throw new Error(`install #${this.inst}: ${what}: ${reasons[0]}\n  model: ${this.worlds.map(describeWorld).join('\n   or: ')}`);
    }
    this.worlds = kept;
  }
}

function usageFits(w: World, view: { usage: { namespaces: number; keys: number; bytes: number }; namespaces: Array<{ name: string; keyCount: number; bytesUsed: number }> }): string | null {
  const expected = usageOf(w);
  if (JSON.stringify(view.usage) !== JSON.stringify(expected)) return `usage ${JSON.stringify(view.usage)} != model ${JSON.stringify(expected)}`;
  const namespaces = Object.keys(w.ns)
    .sort(byteOrder)
    .map((name) => ({ name, keyCount: Object.keys(w.ns[name]!).length, bytesUsed: Object.values(w.ns[name]!).reduce((s, r) => s + r.bytes, 0) }));
  if (JSON.stringify(view.namespaces) !== JSON.stringify(namespaces)) {
    return `namespaces ${JSON.stringify(view.namespaces)} != model ${JSON.stringify(namespaces)}`;
  }
  return null;
}

function listingFits(w: World, ns: string, listed: Observed[], prefix?: string): string | null {
  const keys = Object.keys(w.ns[ns] ?? {})
    .filter((k) => prefix === undefined || k.startsWith(prefix))
    .sort(byteOrder);
  const got = listed.map((o) => o.key);
  if (JSON.stringify(got) !== JSON.stringify(keys)) return `${ns}: listed keys ${JSON.stringify(got)} != model ${JSON.stringify(keys)}`;
  for (const [i, key] of keys.entries()) {
    const d = recordDiff(observedOf(key, w.ns[ns]![key]!), listed[i]!);
    if (d) return `${ns}: ${d}`;
  }
  return null;
}

async function checkUsage(actors: Actor[], possible: Possible[], which: number[]): Promise<void> {
  for (const tenant of [0, 1]) {
    const members = which.filter((i) => TENANT_OF[i] === tenant);
    if (members.length === 0) continue;
    const views = await gw.usage(actors[members[0]!]!.adminToken, members.map((i) => actors[i]!.id));
    if (typeof views === 'string') throw new Error(views);
    for (const i of members) possible[i]!.observe('usage', (w) => usageFits(w, views.get(actors[i]!.id)!));
  }
}

function expectForbidden(what: string, outcome: Outcome): void {
  if (outcome.kind !== 'forbidden') throw new Error(`${what}: expected FORBIDDEN, got ${JSON.stringify(outcome)}`);
}

/** Another install (of either tenant) never sees this install's data; the other tenant's admin is FORBIDDEN. */
async function spy(actors: Actor[], tenants: string[], possible: Possible[], s: SpySpec): Promise<void> {
  const x = actors[s.x]!;
  const y = actors[s.y]!;
  const own = await gw.getWith(y.extToken, s.ns, s.key);
  possible[s.y]!.observe(`#${s.y} reading its own ${s.ns}/${s.key}`, (w) => expectationDiff(expectOf(w, possible[s.y]!.quota, LIMITS, { t: 'get', ns: s.ns, key: s.key }), own));
  const viaRunner = await gw.get('runner', y, s.ns, s.key);
  possible[s.y]!.observe(`#${s.y} reading ${s.ns}/${s.key} through the Runner`, (w) =>
    expectationDiff(expectOf(w, possible[s.y]!.quota, LIMITS, { t: 'get', ns: s.ns, key: s.key }), viaRunner),
  );
  expectForbidden(`extension #${s.y} naming install #${s.x}`, await gw.getWith(y.extToken, s.ns, s.key, x.id));
  const otherTenant = tenants[1 - TENANT_OF[s.x]!]!;
  expectForbidden(`admin of the other tenant reading install #${s.x}`, await gw.getWith(await t.adminToken(otherTenant), s.ns, s.key, x.id));
}

async function runOps(actors: Actor[], possible: Possible[], batch: Extract<BatchSpec, { t: 'ops' }>): Promise<void> {
  const resolved = batch.cmds.map((spec) => ({ spec, cmd: resolveCmd(possible[spec.inst]!.first, spec) }));
  const answers = await Promise.all(resolved.map(({ spec, cmd }) => answerOf(spec.door, actors[spec.inst]!, cmd)));
  for (const [i, a] of answers.entries()) tally(`${resolved[i]!.cmd.t}→${a.kind}${a.kind === 'quota' ? `:${a.quota}` : a.kind === 'limit' ? `:${a.limit}` : ''}`);
  const touched = [...new Set(resolved.map((r) => r.spec.inst))];
  for (const inst of touched) {
    possible[inst]!.explain(
      resolved.flatMap((r, i) => (r.spec.inst === inst ? [{ door: r.spec.door, cmd: r.cmd, actual: answers[i]! }] : [])),
    );
  }
  await checkUsage(actors, possible, touched);
}

/** Real expiry: records written with ttlSeconds 1 vanish (reads, usage, quotas) once the second has passed. */
async function runExpire(actors: Actor[], possible: Possible[], batch: Extract<BatchSpec, { t: 'expire' }>): Promise<void> {
  const p = possible[batch.inst]!;
  const actor = actors[batch.inst]!;
  tally('expire batch');
  for (const key of batch.keys) {
    const cmd: ModelCommand = { t: 'put', ns: batch.ns, key, value: batch.value, ttl: 1, ifRevision: null };
    p.explain([{ door: batch.door, cmd, actual: await answerOf(batch.door, actor, cmd) }]);
  }
  await new Promise((r) => setTimeout(r, 1300));
  for (const w of p.worlds) {
    for (const [ns, recs] of Object.entries(w.ns)) for (const [k, r] of Object.entries(recs)) if (r.ttl === 1) removeRecord(w, ns, k);
  }
  for (const key of batch.keys) {
    const answer = await gw.get(batch.door, actor, batch.ns, key);
    p.observe(`reading expired ${batch.ns}/${key}`, (w) => outcomeDiff({ kind: 'get', record: recordOf(w, batch.ns, key) ? observedOf(key, recordOf(w, batch.ns, key)!) : null }, answer));
  }
  await checkUsage(actors, possible, [batch.inst]);
}

/** Full listings of every namespace (recordList, and the Runner's list for one of them), usage, and the other tenant's admin refused. */
async function finalCheck(actors: Actor[], tenants: string[], possible: Possible[], pageSizes: number[]): Promise<void> {
  for (const actor of actors) {
    const p = possible[actor.index]!;
    for (const [n, ns] of NAMESPACES.entries()) {
      const size = pageSizes[(actor.index * NAMESPACES.length + n) % pageSizes.length]!;
      const doors: Door[] = [n % 2 === 0 ? 'ext' : 'admin', ...(n === actor.index % NAMESPACES.length ? (['runner'] as const) : [])];
      for (const door of doors) {
        const listed = await gw.list(door, actor, ns, size);
        if (typeof listed === 'string') throw new Error(`install #${actor.index} ${door}: ${listed}`);
        p.observe(`${door} listing of ${ns} by pages of ${size}`, (w) => listingFits(w, ns, listed));
      }
      if (n === 0) {
        const prefixed = await gw.list(actor.index % 2 === 0 ? 'ext' : 'runner', actor, ns, size, 'a/');
        if (typeof prefixed === 'string') throw new Error(prefixed);
        p.observe(`listing of ${ns} with prefix a/`, (w) => listingFits(w, ns, prefixed, 'a/'));
      }
    }
    const otherAdmin = await t.adminToken(tenants[1 - TENANT_OF[actor.index]!]!);
    const foreign = await t.gql(`query($id: ID) { install(id: $id) { usage { keys } } }`, { id: actor.id }, { token: otherAdmin });
    expect(foreign.body.errors?.[0]?.extensions?.code, JSON.stringify(foreign.body)).toBe('FORBIDDEN');
    expect(foreign.body.data?.install ?? null).toBeNull();
  }
  await checkUsage(actors, possible, actors.map((a) => a.index));
}

describe('the gateway behaves like the in-memory model', () => {
  it('under random concurrent puts, bulk puts, deletes, reads and TTLs across installs and tenants', async () => {
    const { actors } = await freshActors();
    for (const a of actors) {
      const res = await t.gql(`query($id: ID) { install(id: $id) { quota { maxNamespaces maxKeysPerNamespace maxBytes maxValueBytes maxMetadataBytes } } }`, { id: a.id }, { token: a.adminToken });
      expect(res.body.data.install.quota, 'the model uses the quotas the gateway applies').toEqual(QUOTAS[a.index]);
    }
    await check(
      fc.asyncProperty(sequenceArb, fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 4 }), async (batches, pageSizes) => {
        const started = performance.now();
        const { actors, tenants } = await freshActors();
        const possible = actors.map((a) => new Possible(a.index, QUOTAS[a.index]!));
        for (const batch of batches) {
          if (batch.t === 'ops') {
            await runOps(actors, possible, batch);
            if (batch.spy) await spy(actors, tenants, possible, batch.spy);
          } else {
            await runExpire(actors, possible, batch);
          }
        }
        await finalCheck(actors, tenants, possible, pageSizes);
        if (process.env.FC_VERBOSE) console.log(`run: ${batches.length} batches, ${batches.reduce((n, b) => n + (b.t === 'ops' ? b.cmds.length : b.keys.length), 0)} commands, ${Math.round(performance.now() - started)} ms`);
      }),
      25,
    );
    if (process.env.FC_VERBOSE) console.log([...seen.entries()].sort().map(([k, n]) => `${k}: ${n}`).join('\n'));
  }, 300_000);
});

// ---------------------------------------------------------------------------------- racing writers

type Race =
  | { t: 'keys'; max: number; existing: number; writers: number; doors: Door[] }
  | { t: 'namespaces'; max: number; existing: number; writers: number; doors: Door[] }
  | { t: 'bytes'; max: number; sizes: number[]; doors: Door[] }
  | { t: 'ifRevision'; start: number; writers: number; doors: Door[] }
  | { t: 'unconditional'; start: number; writers: number; doors: Door[] }
  | { t: 'delete'; conditional: boolean; writers: number; doors: Door[] };

const doorsArb = fc.array(doorArb, { minLength: 12, maxLength: 12 });
const raceArb: fc.Arbitrary<Race> = fc.oneof(
  fc
    .record({ max: fc.integer({ min: 1, max: 5 }), existing: fc.nat(), writers: fc.integer({ min: 1, max: 10 }), doors: doorsArb })
    .map((r) => ({ t: 'keys' as const, ...r, existing: r.existing % (r.max + 1) })),
  fc
    .record({ max: fc.integer({ min: 1, max: 3 }), existing: fc.nat(), writers: fc.integer({ min: 1, max: 6 }), doors: doorsArb })
    .map((r) => ({ t: 'namespaces' as const, ...r, existing: r.existing % (r.max + 1) })),
  fc.record({
    t: fc.constant('bytes' as const),
    max: fc.integer({ min: 100, max: 1500 }),
    sizes: fc.array(fc.integer({ min: 10, max: 500 }), { minLength: 2, maxLength: 10 }),
    doors: doorsArb,
  }),
  fc.record({ t: fc.constant('ifRevision' as const), start: fc.integer({ min: 0, max: 3 }), writers: fc.integer({ min: 2, max: 10 }), doors: doorsArb }),
  fc.record({ t: fc.constant('unconditional' as const), start: fc.integer({ min: 0, max: 3 }), writers: fc.integer({ min: 2, max: 10 }), doors: doorsArb }),
  fc.record({ t: fc.constant('delete' as const), conditional: fc.boolean(), writers: fc.integer({ min: 2, max: 8 }), doors: doorsArb }),
);

async function raceActor(quota?: Partial<QuotaSettings>): Promise<Actor> {
  const install = await t.createInstall({ quota: quota as Record<string, number> | undefined });
  return { index: -1, id: install.id, tenantId: install.tenantId, extToken: await install.token(), adminToken: await t.adminToken(install.tenantId) };
}

async function usageOfActor(actor: Actor): Promise<{ namespaces: number; keys: number; bytes: number }> {
  const views = await gw.usage(actor.adminToken, [actor.id]);
  if (typeof views === 'string') throw new Error(views);
  return views.get(actor.id)!.usage;
}

async function mustPut(actor: Actor, namespace: string, key: string, value: unknown): Promise<void> {
  const r = await gw.put('ext', actor, { namespace, key, value });
  if (r.kind !== 'put') throw new Error(`setup put failed: ${JSON.stringify(r)}`);
}

/** Counts answers by kind and fails on any answer outside `allowed`. */
function kinds(answers: Outcome[], allowed: Array<Outcome['kind']>): Map<string, number> {
  const counts = new Map<string, number>();
  for (const a of answers) {
    if (!allowed.includes(a.kind)) throw new Error(`unexpected answer ${JSON.stringify(a).slice(0, 500)}`);
    counts.set(a.kind, (counts.get(a.kind) ?? 0) + 1);
  }
  return counts;
}

async function runRace(race: Race): Promise<void> {
  const door = (i: number) => race.doors[i % race.doors.length]!;
  switch (race.t) {
    case 'keys': {
      const actor = await raceActor({ maxKeysPerNamespace: race.max });
      for (let i = 0; i < race.existing; i++) await mustPut(actor, 'ns', `old-${i}`, i);
      const answers = await Promise.all(Array.from({ length: race.writers }, (_, i) => gw.put(door(i), actor, { namespace: 'ns', key: `new-${i}`, value: i })));
      const won = kinds(answers, ['put', 'quota']).get('put') ?? 0;
      expect(won, 'creates that fit are never refused, and no more than fit succeed').toBe(Math.min(race.writers, race.max - race.existing));
      for (const a of answers) if (a.kind === 'quota') expect(a).toEqual({ kind: 'quota', quota: 'keysPerNamespace', allowed: race.max, used: race.max, itemIndex: null });
      expect((await usageOfActor(actor)).keys).toBe(race.existing + won);
      return;
    }
    case 'namespaces': {
      const actor = await raceActor({ maxNamespaces: race.max });
      for (let i = 0; i < race.existing; i++) await mustPut(actor, `old-${i}`, 'k', i);
      const answers = await Promise.all(Array.from({ length: race.writers }, (_, i) => gw.put(door(i), actor, { namespace: `new-${i}`, key: 'k', value: i })));
      const won = kinds(answers, ['put', 'quota']).get('put') ?? 0;
      expect(won).toBe(Math.min(race.writers, race.max - race.existing));
      for (const a of answers) if (a.kind === 'quota') expect(a).toEqual({ kind: 'quota', quota: 'namespaces', allowed: race.max, used: race.max, itemIndex: null });
      expect((await usageOfActor(actor)).namespaces).toBe(race.existing + won);
      return;
    }
    case 'bytes': {
      const actor = await raceActor({ maxBytes: race.max });
      const values = race.sizes.map((n) => 'b'.repeat(n));
      const bytes = values.map((v) => Buffer.byteLength(JSON.stringify(v)) + 2); // + metadata {}
      const answers = await Promise.all(values.map((value, i) => gw.put(door(i), actor, { namespace: 'ns', key: `k${i}`, value })));
      kinds(answers, ['put', 'quota']);
      const accepted = answers.flatMap((a, i) => (a.kind === 'put' ? [bytes[i]!] : []));
      const total = accepted.reduce((s, n) => s + n, 0);
      expect(total, 'racing writers never push usage past the quota').toBeLessThanOrEqual(race.max);
      expect((await usageOfActor(actor)).bytes, 'usage equals what was accepted').toBe(total);
      // Each refusal saw the usage of some set of accepted writes, and the write would not have fit.
      const reachable = accepted.reduce((sums, n) => new Set([...sums, ...[...sums].map((s) => s + n)]), new Set([0]));
      for (const [i, a] of answers.entries()) {
        if (a.kind !== 'quota') continue;
        expect(a.quota).toBe('bytes');
        expect(reachable.has(a.used), `used ${a.used} is not a sum of accepted writes ${accepted}`).toBe(true);
        expect(a.used + bytes[i]!).toBeGreaterThan(race.max);
      }
      return;
    }
    case 'ifRevision': {
      const actor = await raceActor();
      for (let i = 0; i < race.start; i++) await mustPut(actor, 'ns', 'k', `setup-${i}`);
      const answers = await Promise.all(
        Array.from({ length: race.writers }, (_, i) => gw.put(door(i), actor, { namespace: 'ns', key: 'k', value: `writer-${i}`, ifRevision: race.start })),
      );
      expect(kinds(answers, ['put', 'mismatch']).get('put'), 'of racing ifRevision writes exactly one wins').toBe(1);
      const winner = answers.findIndex((a) => a.kind === 'put');
      expect((answers[winner] as Extract<Outcome, { kind: 'put' }>).record.revision).toBe(race.start + 1);
      for (const a of answers) if (a.kind === 'mismatch') expect(a).toEqual({ kind: 'mismatch', key: 'k', expected: race.start, current: race.start + 1 });
      const final = await gw.get('ext', actor, 'ns', 'k');
      expect(final.kind === 'get' && final.record && { revision: final.record.revision, value: final.record.value }).toEqual({ revision: race.start + 1, value: `writer-${winner}` });
      return;
    }
    case 'unconditional': {
      const actor = await raceActor();
      for (let i = 0; i < race.start; i++) await mustPut(actor, 'ns', 'k', `setup-${i}`);
      const answers = await Promise.all(Array.from({ length: race.writers }, (_, i) => gw.put(door(i), actor, { namespace: 'ns', key: 'k', value: `writer-${i}` })));
      kinds(answers, ['put']);
      const revisions = answers.map((a) => (a as Extract<Outcome, { kind: 'put' }>).record.revision);
      expect([...revisions].sort((a, b) => a - b), 'no update is lost: every write gets its own revision').toEqual(Array.from({ length: race.writers }, (_, i) => race.start + 1 + i));
      const last = revisions.indexOf(race.start + race.writers);
      const final = await gw.get('runner', actor, 'ns', 'k');
      expect(final.kind === 'get' && final.record && { revision: final.record.revision, value: final.record.value }).toEqual({ revision: race.start + race.writers, value: `writer-${last}` });
      return;
    }
    case 'delete': {
      const actor = await raceActor();
      await mustPut(actor, 'ns', 'k', 1);
      await mustPut(actor, 'ns', 'k', 2);
      const answers = await Promise.all(
        Array.from({ length: race.writers }, (_, i) => gw.del(door(i), actor, { namespace: 'ns', key: 'k', ifRevision: race.conditional ? 2 : null })),
      );
      const deleted = answers.filter((a) => a.kind === 'deleted' && a.deleted).length;
      expect(deleted, 'exactly one racing delete deletes').toBe(1);
      for (const a of answers) {
        if (a.kind === 'deleted' && a.deleted) continue;
        expect(a).toEqual(race.conditional ? { kind: 'mismatch', key: 'k', expected: 2, current: null } : { kind: 'deleted', deleted: false });
      }
      expect(await usageOfActor(actor)).toEqual({ namespaces: 0, keys: 0, bytes: 0 });
      return;
    }
  }
}

describe('quotas and revisions hold under racing writers', () => {
  it('at most what fits succeeds, exactly one conditional writer wins, no update is lost', async () => {
    await check(fc.asyncProperty(raceArb, runRace), 40);
  }, 300_000);
});
