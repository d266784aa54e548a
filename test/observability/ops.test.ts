/**
 * ops/alerts.yml and ops/grafana-dashboard.json against the gateway's real /metrics: every metric a
 * rule or a panel names exists, and every gateway metric has a panel, so they cannot drift apart.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app.js';
import { scrape, type Exposition } from './prometheus.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const alertsFile = `${root}ops/alerts.yml`;
const dashboardFile = `${root}ops/grafana-dashboard.json`;

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  datasource?: { uid?: string };
  targets?: Array<{ expr?: string; refId: string }>;
}

/** Series a Prometheus itself provides (not the gateway's /metrics). */
const PROMETHEUS_SERIES = new Set(['up']);
const KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'and', 'or', 'unless', 'offset', 'inf', 'nan']);

/** Metric names a PromQL expression selects (functions, keywords, labels, durations left out). */
export function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names = new Set<string>();
  for (const m of stripped.matchAll(/(?<![\w:$.])[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const name = m[0];
    const isCall = /^\s*\(/.test(stripped.slice(m.index + name.length));
    if (!isCall && !KEYWORDS.has(name.toLowerCase())) names.add(name);
  }
  return [...names];
}

function loadRules(): Rule[] {
  const doc = parseYaml(readFileSync(alertsFile, 'utf8')) as { groups: Array<{ name: string; rules: Rule[] }> };
  return doc.groups.flatMap((g) => g.rules);
}

function loadDashboard(): { panels: Panel[]; templating: { list: Array<{ name: string; query?: unknown; definition?: string }> } } {
  return JSON.parse(readFileSync(dashboardFile, 'utf8'));
}

describe('metric names in PromQL', () => {
  it('are found, and functions, keywords, labels and durations are not', () => {
    expect(
      metricNames(
        'histogram_quantile(0.95, sum by (le, operation) (rate(ext_storage_operation_duration_seconds_bucket{instance=~"$instance",le!="x"}[$__rate_interval]))) > 0.1 and on (job) up offset 1d',
      ).sort(),
    ).toEqual(['ext_storage_operation_duration_seconds_bucket', 'up']);
    expect(metricNames('sum(rate(a_total[5m])) / clamp_min(sum(rate(b_total[5m])), 1e-9) > 50').sort()).toEqual(['a_total', 'b_total']);
  });
});

describe('ops/alerts.yml and ops/grafana-dashboard.json', () => {
  let t: TestApp;
  let exposition: Exposition;

  beforeAll(async () => {
    t = await startTestApp();
    exposition = await scrape(t.url);
  });
  afterAll(async () => {
    await t?.close();
  });

  it('alert rules are complete: a name, an expression, a severity, a summary and a description', () => {
    const rules = loadRules();
    expect(rules.length).toBeGreaterThanOrEqual(8);
    const names = new Set<string>();
    for (const rule of rules) {
      expect(rule.alert, JSON.stringify(rule)).toMatch(/^ExtStorage[A-Za-z0-9]+$/);
      expect(names.has(rule.alert!), `duplicate alert ${rule.alert}`).toBe(false);
      names.add(rule.alert!);
      expect(rule.expr.trim().length).toBeGreaterThan(0);
      expect(['critical', 'warning', 'info']).toContain(rule.labels?.severity);
      expect(rule.annotations?.summary, rule.alert).toBeTruthy();
      expect(rule.annotations?.description, rule.alert).toBeTruthy();
    }
    // The signals the issue asks for.
    const allExpr = rules.map((r) => r.expr).join('\n');
    for (const signal of [
      'ext_storage_http_requests_total',
      'ext_storage_graphql_request_duration_seconds_bucket',
      'threshold="0.8"',
      'threshold="0.95"',
      'ext_storage_ttl_deleted_total',
      'ext_storage_rate_limited_total',
      'ext_storage_db_pool_waiting',
    ]) {
      expect(allExpr, signal).toContain(signal);
    }
  });

  it('every metric an alert names exists in /metrics', () => {
    const missing = loadRules().flatMap((r) => metricNames(r.expr).filter((n) => !exposition.seriesNames.has(n) && !PROMETHEUS_SERIES.has(n)).map((n) => `${r.alert}: ${n}`));
    expect(missing).toEqual([]);
  });

  it('the dashboard is valid: unique ids, Prometheus targets through the datasource variable, no overlapping panels', () => {
    const dashboard = loadDashboard();
    expect(dashboard.templating.list.map((v) => v.name)).toEqual(expect.arrayContaining(['datasource', 'instance']));
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    const cells = new Map<string, string>();
    for (const p of dashboard.panels) {
      expect(p.gridPos.x + p.gridPos.w, p.title).toBeLessThanOrEqual(24);
      for (let x = p.gridPos.x; x < p.gridPos.x + p.gridPos.w; x++) {
        for (let y = p.gridPos.y; y < p.gridPos.y + p.gridPos.h; y++) {
          const cell = `${x},${y}`;
          expect(cells.get(cell), `"${p.title}" overlaps "${cells.get(cell)}"`).toBeUndefined();
          cells.set(cell, p.title);
        }
      }
      if (p.type === 'row') continue;
      expect(p.datasource?.uid, p.title).toBe('${datasource}');
      expect(p.targets?.length, p.title).toBeGreaterThan(0);
      for (const target of p.targets!) expect(target.expr, p.title).toBeTruthy();
    }
  });

  it('every metric a panel names exists in /metrics, and every gateway metric has a panel', () => {
    const dashboard = loadDashboard();
    const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((target) => ({ panel: p.title, expr: target.expr! })));
    for (const v of dashboard.templating.list) if (v.definition) exprs.push({ panel: `variable ${v.name}`, expr: v.definition.replace(/^label_values\(([^,]+),.*\)$/, '$1') });
    const missing = exprs.flatMap(({ panel, expr }) => metricNames(expr).filter((n) => !exposition.seriesNames.has(n) && !PROMETHEUS_SERIES.has(n)).map((n) => `${panel}: ${n}`));
    expect(missing).toEqual([]);

    const used = new Set(exprs.flatMap(({ expr }) => metricNames(expr)).map((n) => n.replace(/_(bucket|sum|count)$/, '')));
    const unplotted = [...exposition.types.keys()].filter((family) => family.startsWith('ext_storage_') && !used.has(family));
    expect(unplotted, 'gateway metrics without a dashboard panel').toEqual([]);
  });

  const promtool = spawnSync('promtool', ['--version'], { stdio: 'ignore' }).status === 0;
  it.skipIf(!promtool)('promtool accepts the rules and their unit tests pass', () => {
    for (const args of [
      ['check', 'rules', alertsFile],
      ['test', 'rules', `${root}ops/alerts.test.yml`],
    ]) {
      const run = spawnSync('promtool', args, { encoding: 'utf8' });
      expect(run.status, `${args.join(' ')}\n${run.stdout}\n${run.stderr}`).toBe(0);
    }
  });
});
