/**
 * Issue 13: `promtool check metrics` accepts a live /metrics, after traffic that gives the
 * histograms and counters series (a write, a read, a refusal, a rate-limited request, a Runner
 * call). prom-client's defaults had three gauges named `_total` (nodejs_active_handles_total, …),
 * which promtool refuses; src/http/metrics.ts drops them (their per-type gauges stay).
 *
 * promtool comes from the Debian package `prometheus` (.ci/run installs it before `npm test`).
 * With CI=true a missing promtool fails this file; elsewhere it is skipped, loudly.
 */
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GAUGES_NAMED_TOTAL } from '../../src/http/metrics.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { parsePrometheus } from './prometheus.js';

const PROMTOOL = process.env.PROMTOOL ?? 'promtool';
const available = spawnSync(PROMTOOL, ['--version'], { stdio: 'ignore' }).status === 0;
const inCI = process.env.CI === 'true';
if (!available && !inCI) {
  console.warn(
    '\n!!!!!!!! promtool not found: test/observability/promtool.test.ts is SKIPPED. ' +
      'Install it (apt-get install -y --no-install-recommends prometheus) to check /metrics; CI fails without it. !!!!!!!!\n',
  );
}

function promtoolCheck(text: string): { status: number | null; output: string } {
  const run = spawnSync(PROMTOOL, ['check', 'metrics'], { input: text, encoding: 'utf8' });
  return { status: run.status, output: `${run.stdout}${run.stderr}`.trim() };
}

describe('promtool check metrics', () => {
  it.runIf(inCI)('promtool is installed (CI never skips this check)', () => {
    expect(available, `${PROMTOOL} --version failed: .ci/run installs the Debian package prometheus`).toBe(true);
  });

  describe.runIf(available)('on a live /metrics', () => {
    let t: TestApp;
    let text: string;

    beforeAll(async () => {
      t = await startTestApp({ STORAGE_RATE_LIMIT_PER_SECOND: '1', STORAGE_RATE_LIMIT_BURST: '3', STORAGE_METRICS_INSTALL_LABELS: 'true' });
      const install = await t.createInstall();
      const token = await install.token();
      const put = await t.gql('mutation($input: PutRecordInput!) { putRecord(input: $input) { __typename } }', { input: { namespace: 'n', key: 'k', value: { a: 1 } } }, { token });
      expect(put.body.data.putRecord.__typename).toBe('PutRecordSuccess');
      const get = await t.gql('{ record(namespace: "n", key: "k") { value } }', {}, { token });
      expect(get.body.data.record.value).toEqual({ a: 1 });
      expect((await t.gql('{ __typename }')).status).toBe(401);
      const runner = await fetch(`${t.url}/api/internal/ext-storage/install/${install.id}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-runner-auth': t.runnerToken },
        body: JSON.stringify({ operation: 'get', namespace: 'n', key: 'k' }),
      });
      expect(runner.status).toBe(200);
      let limited = 0;
      for (let i = 0; i < 10 && limited === 0; i++) if ((await t.gql('{ __typename }', {}, { token })).status === 429) limited++;
      expect(limited, 'a request was rate limited').toBe(1);
      const res = await fetch(`${t.url}/metrics`);
      expect(res.status).toBe(200);
      text = await res.text();
    });
    afterAll(async () => {
      await t?.close();
    });

    it('the traffic has series: histograms, counters, the per-install counter, the process metrics', () => {
      const e = parsePrometheus(text);
      for (const name of [
        'ext_storage_operation_duration_seconds_bucket',
        'ext_storage_graphql_request_duration_seconds_bucket',
        'ext_storage_operations_total',
        'ext_storage_http_requests_total',
        'ext_storage_rate_limited_total',
        'ext_storage_install_requests_total',
        'ext_storage_bytes_written_total',
        'process_cpu_seconds_total',
        'nodejs_heap_size_used_bytes',
      ]) {
        expect(e.samples.some((s) => s.name === name && s.value > 0), name).toBe(true);
      }
      // The per-type gauges stay; their `_total` sums (gauges with a counter's suffix) are gone.
      expect(e.types.get('nodejs_active_handles')).toBe('gauge');
      for (const name of GAUGES_NAMED_TOTAL) expect(e.types.has(name), name).toBe(false);
    });

    it('exits 0 with no findings', () => {
      const check = promtoolCheck(text);
      expect(check, text.slice(0, 2000)).toEqual({ status: 0, output: '' });
    });

    it('would catch the old exposition (control: a gauge named _total is a finding)', () => {
      const bad = `${text}# HELP nodejs_active_handles_total Total number of active handles.\n# TYPE nodejs_active_handles_total gauge\nnodejs_active_handles_total 3\n`;
      const check = promtoolCheck(bad);
      expect(check.status).not.toBe(0);
      expect(check.output).toContain('nodejs_active_handles_total');
    });
  });
});
