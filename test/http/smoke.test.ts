import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app.js';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => {
  await t?.close();
});

describe('the server', () => {
  it('answers /healthz and /readyz', async () => {
    expect((await fetch(`${t.url}/healthz`)).status).toBe(200);
    const ready = await fetch(`${t.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready' });
  });

  it('answers another method on /healthz, /readyz and /metrics with 405 and Allow: GET', async () => {
    for (const path of ['/healthz', '/readyz', '/metrics']) {
      const res = await fetch(`${t.url}${path}`, { method: 'POST', body: '{}' });
      expect(res.status, path).toBe(405);
      expect(res.headers.get('allow')).toBe('GET');
      expect(await res.json()).toEqual({ error: 'use GET', code: 'METHOD_NOT_ALLOWED' });
    }
  });

  it('writes and reads a record for an extension', async () => {
    const install = await t.createInstall();
    const token = await install.token();
    const put = await t.gql(
      `mutation($v: JSON!) { putRecord(input: { namespace: "prefs", key: "theme", value: $v }) {
        __typename ... on PutRecordSuccess { record { key value revision } } } }`,
      { v: { mode: 'dark' } },
      { token },
    );
    expect(put.status).toBe(200);
    expect(put.body.data.putRecord).toEqual({ __typename: 'PutRecordSuccess', record: { key: 'theme', value: { mode: 'dark' }, revision: 1 } });
    const get = await t.gql(`{ record(namespace: "prefs", key: "theme") { value revision } }`, {}, { token });
    expect(get.body.data.record).toEqual({ value: { mode: 'dark' }, revision: 1 });
  });
});
