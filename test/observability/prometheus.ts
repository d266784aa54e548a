/** A small parser for the Prometheus text format (what /metrics serves), for the observability tests. */

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Exposition {
  samples: Sample[];
  /** Metric families from the `# TYPE` lines: name → counter, gauge, histogram, summary or untyped. */
  types: Map<string, string>;
  /** Every series name a query can use: sample names plus the _bucket/_sum/_count of histograms. */
  seriesNames: Set<string>;
}

const SAMPLE_RE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/;
const LABEL_RE = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function parsePrometheus(text: string): Exposition {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line.startsWith('# TYPE ')) {
      const [, , name, type] = line.split(' ');
      if (name && type) types.set(name, type);
      continue;
    }
    if (line === '' || line.startsWith('#')) continue;
    const m = SAMPLE_RE.exec(line);
    if (!m) throw new Error(`not a Prometheus sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(LABEL_RE)) labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  const seriesNames = new Set(samples.map((s) => s.name));
  for (const [name, type] of types) {
    seriesNames.add(name);
    if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) seriesNames.add(name + suffix);
    if (type === 'summary') for (const suffix of ['_sum', '_count']) seriesNames.add(name + suffix);
  }
  return { samples, types, seriesNames };
}

/** The value of one series (labels must match exactly the ones given, others may exist), 0 when absent. */
export function valueOf(e: Exposition, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const s of e.samples) {
    if (s.name !== name) continue;
    if (Object.entries(labels).every(([k, v]) => s.labels[k] === v)) total += s.value;
  }
  return total;
}

export async function scrape(baseUrl: string): Promise<Exposition & { contentType: string | null; text: string }> {
  const res = await fetch(`${baseUrl}/metrics`);
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`);
  const text = await res.text();
  return { ...parsePrometheus(text), contentType: res.headers.get('content-type'), text };
}

/** Change of each series between two scrapes. */
export function delta(before: Exposition, after: Exposition, name: string, labels: Record<string, string> = {}): number {
  return Math.round((valueOf(after, name, labels) - valueOf(before, name, labels)) * 1e6) / 1e6;
}
