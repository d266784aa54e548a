/**
 * Summarises a V8 .cpuprofile (node --cpu-prof): where the busy time goes, by function (self time)
 * and by area (a package, a node internal module or a project file; self and inclusive time).
 *
 *   node --import tsx bench/profile.ts <file.cpuprofile> [--top 15] [--us-per-request 850] [--skip-ms 5000]
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { round, table } from './support.js';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  file: string;
  /** Milliseconds skipped at the start (start-up and warm-up). */
  skippedMs: number;
  busyMs: number;
  /** Share of samples that were idle (waiting for I/O). */
  idleShare: number;
  functions: Array<{ name: string; area: string; selfShare: number }>;
  areas: Array<{ area: string; selfShare: number; inclusiveShare: number }>;
}

const SPECIAL = new Set(['(idle)', '(program)', '(garbage collector)', '(root)']);

/** The "area" of a frame: a package, a node built-in, a project file, or a V8 pseudo-frame. */
function areaOf(node: ProfileNode): string {
  const { url, functionName } = node.callFrame;
  if (SPECIAL.has(functionName) && !url) return functionName;
  if (!url) return '(native)';
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + 'node_modules/'.length).split('/');
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  if (url.startsWith('node:')) {
    const parts = url.slice(5).split('/');
    return `node:${parts[0] === 'internal' ? parts.slice(1, 3).join('/') : parts[0]}`;
  }
  const src = url.indexOf('/src/');
  if (src >= 0) return url.slice(src + 1);
  return url.replace(/^file:\/\//, '');
}

/** `skipMs`: ignore the first milliseconds of the profile (start-up, module loading, warm-up). */
export function summarizeProfile(file: string, top = 15, skipMs = 0): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

  // Sample i lasted timeDeltas[i + 1] (the time until the next sample).
  const weight = new Map<number, number>();
  let idle = 0;
  let total = 0;
  let at = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    at += profile.timeDeltas[i] ?? 0;
    if (at < skipMs * 1000) continue;
    const id = profile.samples[i]!;
    const dt = Math.max(0, profile.timeDeltas[i + 1] ?? 0);
    total += dt;
    if (byId.get(id)?.callFrame.functionName === '(idle)') {
      idle += dt;
      continue;
    }
    weight.set(id, (weight.get(id) ?? 0) + dt);
  }
  const busy = total - idle;
  const share = (v: number) => (busy > 0 ? round(v / busy, 4) : 0);

  const fnSelf = new Map<string, { area: string; t: number }>();
  const areaSelf = new Map<string, number>();
  const areaIncl = new Map<string, number>();
  for (const [id, t] of weight) {
    const node = byId.get(id)!;
    const area = areaOf(node);
    const cf = node.callFrame;
    const name = `${cf.functionName || '(anonymous)'} ${cf.url ? `${cf.url.split('/').slice(-2).join('/')}:${cf.lineNumber + 1}` : ''}`.trim();
    const f = fnSelf.get(name) ?? { area, t: 0 };
    f.t += t;
    fnSelf.set(name, f);
    areaSelf.set(area, (areaSelf.get(area) ?? 0) + t);
    // Inclusive: every area on the stack, once per sample.
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const a = areaOf(byId.get(cur)!);
      if (a === '(root)' || seen.has(a)) continue;
      seen.add(a);
      areaIncl.set(a, (areaIncl.get(a) ?? 0) + t);
    }
  }
  return {
    file,
    skippedMs: skipMs,
    busyMs: round(busy / 1000, 1),
    idleShare: total > 0 ? round(idle / total, 4) : 0,
    functions: [...fnSelf.entries()]
      .sort((a, b) => b[1].t - a[1].t)
      .slice(0, top)
      .map(([name, v]) => ({ name, area: v.area, selfShare: share(v.t) })),
    areas: [...areaSelf.keys()]
      .map((area) => ({ area, selfShare: share(areaSelf.get(area) ?? 0), inclusiveShare: share(areaIncl.get(area) ?? 0) }))
      .sort((a, b) => b.selfShare - a.selfShare)
      .slice(0, top),
  };
}

/** Text tables; with `usPerRequest` each share is also shown as µs of CPU per request. */
export function formatProfile(s: ProfileSummary, usPerRequest?: number | null): string {
  const us = (x: number) => (usPerRequest ? round(x * usPerRequest, 0) : null);
  const pct = (x: number) => `${round(x * 100, 1)}%`;
  return [
    `profile ${s.file}: first ${round(s.skippedMs / 1000, 1)} s skipped (start-up, warm-up); ${s.busyMs} ms busy, ${pct(s.idleShare)} of samples idle`,
    '',
    table(
      ['area (self time)', 'self', 'inclusive', 'self µs/req'],
      s.areas.map((a) => [a.area, pct(a.selfShare), pct(a.inclusiveShare), us(a.selfShare)]),
    ),
    '',
    table(
      ['function (self time)', 'area', 'self', 'µs/req'],
      s.functions.map((f) => [f.name.slice(0, 70), f.area, pct(f.selfShare), us(f.selfShare)]),
    ),
  ].join('\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { top: { type: 'string', default: '15' }, 'us-per-request': { type: 'string' }, 'skip-ms': { type: 'string', default: '0' } },
  });
  if (positionals.length === 0) {
    process.stderr.write('usage: node --import tsx bench/profile.ts <file.cpuprofile> [--top N] [--us-per-request N]\n');
    process.exit(2);
  }
  for (const file of positionals) {
    const perReq = values['us-per-request'] ? Number(values['us-per-request']) : null;
    process.stdout.write(formatProfile(summarizeProfile(file, Number(values.top), Number(values['skip-ms'])), perReq) + '\n\n');
  }
}
