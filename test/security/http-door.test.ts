/**
 * Issue 11, the HTTP door, over raw sockets (node:net) where the HTTP shape matters:
 * nothing executes without a credential whatever the URL shape, method, Accept header or GraphiQL
 * setting; credentials before bodies; only JSON and query strings; JSON and document nesting
 * refused before they cost parse time; a malformed Host is 400 before credentials; one credential
 * per request on every door; refusals in the media type the request's Accept asks for.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { refusalMediaType } from '../../src/http/respond.js';
import { startTestApp, type TestApp, type TestInstall } from '../support/app.js';
import { mediaTypeOf, raw, type RawAnswer } from '../support/raw-http.js';
import { adminView, expectNoInternals, PUT } from './support.js';

let off: TestApp;
let on: TestApp;
let install: TestInstall;
let token: string;
const NS = 'door';
const RUNNER = '/api/internal/ext-storage/install/';

beforeAll(async () => {
  [off, on] = await Promise.all([startTestApp({ STORAGE_GRAPHIQL: 'false' }), startTestApp({ STORAGE_GRAPHIQL: 'true' })]);
  install = await off.createInstall();
  token = await install.token();
});
afterAll(async () => {
  await Promise.all([off?.close(), on?.close()]);
});

const TYPENAME = encodeURIComponent('{ __typename }');
/** What an executed `{ __typename }` answers: it must never appear for a request without a credential. */
const EXECUTED = '"__typename":"Query"';

function expectNotExecuted(res: RawAnswer, what: string): void {
  expect(res.text, what).not.toContain(EXECUTED);
  expect(res.json?.data ?? null, what).toBeNull();
  expect(res.status, what).toBeGreaterThan(0);
  expect(res.status, what).toBeLessThan(500);
}

function expectRefusal(res: RawAnswer, status: number, code: string, what = ''): void {
  expect(res.status, `${what}: ${res.text.slice(0, 300)}`).toBe(status);
  expect(res.json?.errors?.[0]?.extensions?.code, `${what}: ${res.text.slice(0, 300)}`).toBe(code);
  expect(typeof res.json?.errors?.[0]?.message).toBe('string');
  expect(res.json).not.toHaveProperty('data');
  expectNoInternals({ status: res.status, text: res.text });
}

async function expectNotWritten(key: string): Promise<void> {
  expect((await adminView(off, install, NS, key)).record).toBeNull();
}

describe('finding: a query ran without a credential when GraphiQL was off (GET /graphql?x=1#&query=…, Accept: text/html)', () => {
  it('the reported request is 401 and executes nothing (it answered data before)', async () => {
    for (const accept of ['text/html', 'text/html, application/json', 'text/html,application/xhtml+xml,*/*;q=0.8']) {
      const res = await raw(off.url, { target: `/graphql?x=1#&query=${TYPENAME}`, headers: [['Accept', accept]] });
      expectNotExecuted(res, accept);
      expectRefusal(res, 401, 'UNAUTHENTICATED', accept);
    }
  });

  const SHAPES = [
    `/graphql?x=1#&query=${TYPENAME}`,
    `/graphql?query=${TYPENAME}`,
    `/graphql?query=${TYPENAME}#`,
    `/graphql?x=1&query=${TYPENAME}#frag`,
    `/graphql?%71uery=${TYPENAME}`,
    `/graphql?x=%23&query=${TYPENAME}`,
    `/graphql?&query=${TYPENAME}`,
    `/graphql?#&query=${TYPENAME}`,
    `/graphql?query=${TYPENAME}&query=x`,
    `/graphql#?query=${TYPENAME}`,
    `/graphql#&query=${TYPENAME}`,
    `/graphql/?query=${TYPENAME}`,
    `/%67raphql?query=${TYPENAME}`,
    `/graphql;x?query=${TYPENAME}`,
    '/graphql?',
    '/graphql#',
  ];
  const ACCEPTS = ['text/html', 'text/html, application/json', 'application/json', 'application/graphql-response+json', '*/*', 'text/event-stream', 'multipart/mixed', null];

  it('no URL shape, Accept header or GraphiQL setting executes a GET without a credential', async () => {
    for (const t of [off, on]) {
      for (const target of SHAPES) {
        for (const accept of ACCEPTS) {
          const res = await raw(t.url, { target, headers: accept === null ? [] : [['Accept', accept]] });
          const what = `GraphiQL ${t === on ? 'on' : 'off'}, GET ${target}, Accept ${accept}`;
          expectNotExecuted(res, what);
          // Only /graphql itself is the GraphQL door: other paths are 404, never a page.
          if ((target.split('?')[0] ?? '') === '/graphql') expectRefusal(res, 401, 'UNAUTHENTICATED', what);
          else expect(res.status, what).toBe(404);
        }
      }
    }
  });

  it('no method executes without a credential: POST (any body type), HEAD, PUT, DELETE, PATCH', async () => {
    const json = JSON.stringify({ query: '{ __typename }' });
    const bodies: Array<[string, string]> = [
      ['application/json', json],
      ['application/x-www-form-urlencoded', `query=${TYPENAME}`],
      ['multipart/form-data; boundary=b', `--b\r\nContent-Disposition: form-data; name="operations"\r\n\r\n${json}\r\n--b--\r\n`],
      ['text/plain', json],
      ['application/graphql', '{ __typename }'],
    ];
    for (const t of [off, on]) {
      for (const [type, body] of bodies) {
        for (const target of ['/graphql', `/graphql?query=${TYPENAME}`, `/graphql?x=1#&query=${TYPENAME}`]) {
          const res = await raw(t.url, { method: 'POST', target, headers: [['Content-Type', type], ['Accept', 'text/html, application/json']], body });
          expectNotExecuted(res, `POST ${target} ${type}`);
          expectRefusal(res, 401, 'UNAUTHENTICATED', `POST ${target} ${type}`);
        }
      }
      for (const method of ['HEAD', 'PUT', 'DELETE', 'PATCH']) {
        const res = await raw(t.url, { method, target: `/graphql?x=1#&query=${TYPENAME}`, headers: [['Accept', 'text/html']] });
        expect(res.status, method).toBe(401);
        expectNotExecuted(res, method);
      }
      // A preflight executes nothing either.
      const preflight = await raw(t.url, { method: 'OPTIONS', target: `/graphql?query=${TYPENAME}` });
      expect(preflight.status).toBe(204);
      expect(preflight.text).toBe('');
    }
  });

  it('with GraphiQL on, the page is only `GET /graphql` exactly; with a credential the same URL shapes execute normally (control)', async () => {
    const page = await raw(on.url, { target: '/graphql', headers: [['Accept', 'text/html']] });
    expect(page.status).toBe(200);
    expect(mediaTypeOf(page)).toBe('text/html');
    const pageOff = await raw(off.url, { target: '/graphql', headers: [['Accept', 'text/html']] });
    expectRefusal(pageOff, 401, 'UNAUTHENTICATED');
    const withToken = await raw(off.url, { target: `/graphql?x=1#&query=${TYPENAME}`, headers: [['Accept', 'application/json'], ['Authorization', `Bearer ${token}`]] });
    expect(withToken.status).toBe(200);
    expect(withToken.text).toContain(EXECUTED);
  });
});

describe('finding: bodies were buffered before credentials, and multipart and form bodies were accepted', () => {
  it('a request without a credential is answered 401 before its body is sent (large or small)', async () => {
    for (const length of [100, 1_000_000]) {
      const res = await raw(off.url, { method: 'POST', target: '/graphql', headers: [['Content-Type', 'application/json']], withholdBody: length, timeoutMs: 5000 });
      expectRefusal(res, 401, 'UNAUTHENTICATED', `withheld ${length}`);
    }
  });

  it('a credential with the wrong content type is 415 before the body is sent', async () => {
    const res = await raw(off.url, {
      method: 'POST',
      target: '/graphql',
      headers: [['Content-Type', 'multipart/form-data; boundary=b'], ['Authorization', `Bearer ${token}`]],
      withholdBody: 2_800_000,
      timeoutMs: 5000,
    });
    expectRefusal(res, 415, 'UNSUPPORTED_MEDIA_TYPE');
  });

  it('only application/json: multipart, form, text/plain, application/graphql, none and non-UTF-8 charsets are 415, and write nothing', async () => {
    const key = `ct-${randomUUID()}`;
    const json = JSON.stringify({ query: PUT, variables: { input: { namespace: NS, key, value: 1 } } });
    const parts = Array.from({ length: 40_000 }, (_, i) => `--b\r\nContent-Disposition: form-data; name="p${i}"\r\n\r\nx\r\n`).join('');
    for (const [type, body] of [
      ['multipart/form-data; boundary=b', `--b\r\nContent-Disposition: form-data; name="operations"\r\n\r\n${json}\r\n--b--\r\n`],
      ['multipart/form-data; boundary=b', `${parts}--b--\r\n`],
      ['application/x-www-form-urlencoded', new URLSearchParams({ query: PUT, variables: JSON.stringify({ input: { namespace: NS, key, value: 1 } }) }).toString()],
      ['text/plain', json],
      ['text/plain;charset=UTF-8', json],
      ['application/graphql', `mutation { putRecord(input: { namespace: "${NS}", key: "${key}", value: 1 }) { __typename } }`],
      ['application/graphql+json', json],
      ['application/json; charset=latin1', json],
      ['application/json, text/plain', json],
      [null, json],
    ] as Array<[string | null, string]>) {
      const headers: Array<[string, string]> = [['Authorization', `Bearer ${token}`]];
      if (type !== null) headers.push(['Content-Type', type]);
      const res = await raw(off.url, { method: 'POST', target: '/graphql', headers, body });
      expectRefusal(res, 415, 'UNSUPPORTED_MEDIA_TYPE', String(type));
      // Decided from the header, so 40,000 parts cost nothing (1.6 s of CPU before).
      expect(res.ms, String(type)).toBeLessThan(1500);
    }
    await expectNotWritten(key);
  });

  it('application/json in any case and with a UTF-8 charset is accepted (control)', async () => {
    for (const type of ['application/json', 'Application/JSON', 'application/json; charset=utf-8', 'application/json;charset="UTF-8"']) {
      const res = await raw(off.url, { method: 'POST', target: '/graphql', headers: [['Content-Type', type], ['Authorization', `Bearer ${token}`]], body: JSON.stringify({ query: '{ __typename }' }) });
      expect(res.status, `${type}: ${res.text}`).toBe(200);
      expect(res.text).toContain(EXECUTED);
    }
  });
});

const nestedArrays = (levels: number, inner = '1') => '['.repeat(levels) + inner + ']'.repeat(levels);

describe('finding: 2-million-level nested JSON in variables cost up to 1.1 s', () => {
  const post = (body: string) => raw(off.url, { method: 'POST', target: '/graphql', headers: [['Content-Type', 'application/json'], ['Authorization', `Bearer ${token}`]], body });

  it('2,000,000 levels in variables are 400 before JSON.parse (fast), and write nothing', async () => {
    const key = `deep-${randomUUID()}`;
    for (const body of [
      `{"query":${JSON.stringify(PUT)},"variables":{"input":{"namespace":"${NS}","key":"${key}","value":${nestedArrays(2_000_000)}}}}`,
      `{"query":"{ __typename }","variables":{"a":${'{"a":'.repeat(500_000)}1${'}'.repeat(500_000)}}}`,
    ]) {
      const res = await post(body);
      expectRefusal(res, 400, 'BAD_REQUEST');
      expect(res.json.errors[0].message).toMatch(/deeper than/);
      expect(res.ms).toBeLessThan(1000);
    }
    await expectNotWritten(key);
  });

  it('100 levels are refused the same way; brackets inside strings do not count', async () => {
    expectRefusal(await post(`{"query":"{ __typename }","variables":{"a":${nestedArrays(100)}}}`), 400, 'BAD_REQUEST');
    const inString = await post(JSON.stringify({ query: '{ __typename }', variables: { s: '['.repeat(10_000) + '\\"{'.repeat(100) } }));
    expect(inString.status, inString.text).toBe(200);
  });

  it('a value of the 64 levels a record may have is still stored; 65 is LimitExceeded valueFormat as before', async () => {
    const ok = `ok-${randomUUID()}`;
    const res = await post(`{"query":${JSON.stringify(PUT)},"variables":{"input":{"namespace":"${NS}","key":"${ok}","value":${nestedArrays(64)}}}}`);
    expect(res.status, res.text).toBe(200);
    expect(res.json.data.putRecord.__typename).toBe('PutRecordSuccess');
    const tooDeep = `too-deep-${randomUUID()}`;
    const res65 = await post(`{"query":${JSON.stringify(PUT)},"variables":{"input":{"namespace":"${NS}","key":"${tooDeep}","value":${nestedArrays(65)}}}}`);
    expect(res65.json.data.putRecord).toMatchObject({ __typename: 'LimitExceeded', limit: 'valueFormat' });
    await expectNotWritten(tooDeep);
    const del = await off.gql(`mutation { deleteRecord(input: { namespace: "${NS}", key: "${ok}" }) { __typename } }`, {}, { token });
    expect(del.status).toBe(200);
  });

  it('GET: variables nested 1,000 levels in the query string are 400', async () => {
    const variables = encodeURIComponent(`{"a":${nestedArrays(1000)}}`);
    const res = await raw(off.url, { target: `/graphql?query=${TYPENAME}&variables=${variables}`, headers: [['Authorization', `Bearer ${token}`], ['Accept', 'application/json']] });
    expectRefusal(res, 400, 'BAD_REQUEST');
  });

  it('the Runner door refuses a body nested 2,000,000 levels before parsing it (400 LIMIT_EXCEEDED valueFormat)', async () => {
    const res = await raw(off.url, {
      method: 'POST',
      target: RUNNER + install.id,
      headers: [['Content-Type', 'application/json'], ['x-runner-auth', off.runnerToken]],
      body: `{"operation":"put","namespace":"${NS}","key":"deep","value":${nestedArrays(2_000_000)}}`,
    });
    expect(res.status, res.text).toBe(400);
    expect(res.json).toMatchObject({ code: 'LIMIT_EXCEEDED', details: { limit: 'valueFormat' } });
    expect(res.ms).toBeLessThan(1000);
    await expectNotWritten('deep');
  });
});

describe('finding: a 3,000-level nested literal was an INTERNAL error', () => {
  const literals = [
    ['3,000 nested lists', nestedArrays(3000)],
    ['3,000 nested objects', '{ a: '.repeat(3000) + '1' + ' }'.repeat(3000)],
    ['1,500 nested lists', nestedArrays(1500)],
  ] as const;

  it('over POST: 400 GRAPHQL_PARSE_FAILED, nothing written', async () => {
    for (const [name, literal] of literals) {
      const key = `literal-${randomUUID()}`;
      const res = await raw(off.url, {
        method: 'POST',
        target: '/graphql',
        headers: [['Content-Type', 'application/json'], ['Authorization', `Bearer ${token}`]],
        body: JSON.stringify({ query: `mutation { putRecord(input: { namespace: "${NS}", key: "${key}", value: ${literal} }) { __typename } }` }),
      });
      expect(res.status, `${name}: ${res.text.slice(0, 300)}`).toBe(400);
      expect(res.json.errors[0].extensions.code).toBe('GRAPHQL_PARSE_FAILED');
      expectNoInternals({ status: res.status, text: res.text });
      await expectNotWritten(key);
    }
  });

  it('over GET: 400 as well', async () => {
    // Brackets unencoded: 3,000 levels percent-encoded would not fit Node's 16 KiB request head (431).
    const query = `${encodeURIComponent(`{ record(namespace: "${NS}", key: `)}${nestedArrays(3000, '%22k%22')}${encodeURIComponent(') { key } }')}`;
    const res = await raw(off.url, { target: `/graphql?query=${query}`, headers: [['Authorization', `Bearer ${token}`], ['Accept', 'application/json']] });
    expect(res.status, res.text.slice(0, 300)).toBe(400);
    expect(res.json.errors[0].extensions.code).toBe('GRAPHQL_PARSE_FAILED');
  });

  it('a literal of 64 levels is still a value (control), and brackets in strings, block strings and comments do not count', async () => {
    const key = `literal-ok-${randomUUID()}`;
    const res = await off.gql(`mutation { putRecord(input: { namespace: "${NS}", key: "${key}", value: ${nestedArrays(64)} }) { __typename } }`, {}, { token });
    expect(res.body.data.putRecord.__typename).toBe('PutRecordSuccess');
    const quoted = await off.gql(`# ${'['.repeat(500)}\nquery { record(namespace: "${NS}", key: "${'{'.repeat(200)}") { key } q2: record(namespace: "${NS}", key: """${'['.repeat(200)}""") { key } }`, {}, { token });
    expect(quoted.status, JSON.stringify(quoted.body)).toBe(200);
    await off.gql(`mutation { deleteRecord(input: { namespace: "${NS}", key: "${key}" }) { __typename } }`, {}, { token });
  });
});

describe('finding: a malformed Host header was a 500', () => {
  const BAD_HOSTS = ['a b', 'a/b', '@', 'ex%ample', '[::1', 'x:99999', 'x:', ':80', 'a..b:80:90', 'host?x', 'host#x', ''];

  it('is 400 before credentials are looked at, on every path and method', async () => {
    for (const host of BAD_HOSTS) {
      for (const [method, target, headers] of [
        ['GET', '/graphql', [['Accept', 'text/html']]],
        ['GET', `/graphql?query=${TYPENAME}`, [['Accept', 'text/html, application/json']]],
        ['POST', '/graphql', [['Content-Type', 'application/json']]],
        ['POST', '/graphql', [['Content-Type', 'application/json'], ['Authorization', `Bearer ${token}`]]],
        ['POST', RUNNER + install.id, [['Content-Type', 'application/json'], ['x-runner-auth', off.runnerToken]]],
      ] as Array<[string, string, Array<[string, string]>]>) {
        for (const t of [off, on]) {
          const res = await raw(t.url, { method, target, host, headers, body: method === 'POST' ? JSON.stringify({ query: '{ __typename }' }) : undefined });
          expectRefusal(res, 400, 'BAD_REQUEST', `Host ${JSON.stringify(host)} ${method} ${target}`);
          expectNotExecuted(res, host);
        }
      }
    }
  });

  it('two Host headers are 400 too', async () => {
    const res = await raw(off.url, { target: `/graphql?query=${TYPENAME}`, host: 'a.example', headers: [['Host', 'b.example'], ['Authorization', `Bearer ${token}`]] });
    expectRefusal(res, 400, 'BAD_REQUEST');
  });

  it('well-formed hosts pass (control)', async () => {
    for (const host of ['localhost', 'localhost:4000', '127.0.0.1:80', '[::1]:8080', '[::1]', 'my_service.internal:8080', 'EXAMPLE.com.']) {
      const res = await raw(off.url, { target: `/graphql?query=${TYPENAME}`, host, headers: [['Authorization', `Bearer ${token}`], ['Accept', 'application/json']] });
      expect(res.status, `${host}: ${res.text}`).toBe(200);
    }
  });
});

describe('finding: a bearer token and x-runner-auth together were accepted on the REST door', () => {
  it('the Runner REST door: 401 UNAUTHORIZED, nothing written (it wrote before)', async () => {
    for (const authorization of [`Bearer ${token}`, `Bearer ${await off.adminToken()}`, 'Basic YTpi', '']) {
      const key = `rest-two-${randomUUID()}`;
      const res = await raw(off.url, {
        method: 'POST',
        target: RUNNER + install.id,
        headers: [['Content-Type', 'application/json'], ['x-runner-auth', off.runnerToken], ['Authorization', authorization]],
        body: JSON.stringify({ operation: 'put', namespace: NS, key, value: 1 }),
      });
      expect(res.status, `${authorization}: ${res.text}`).toBe(401);
      expect(res.json).toMatchObject({ code: 'UNAUTHORIZED', details: null });
      await expectNotWritten(key);
    }
  });

  it('the Runner REST door does not take a bearer token instead of x-runner-auth', async () => {
    const key = `rest-bearer-${randomUUID()}`;
    const res = await raw(off.url, {
      method: 'POST',
      target: RUNNER + install.id,
      headers: [['Content-Type', 'application/json'], ['Authorization', `Bearer ${token}`]],
      body: JSON.stringify({ operation: 'put', namespace: NS, key, value: 1 }),
    });
    expect(res.status).toBe(401);
    expect(res.json.code).toBe('UNAUTHORIZED');
    await expectNotWritten(key);
  });

  it('GraphQL: both credentials, in either order, empty or not, are 401 UNAUTHENTICATED', async () => {
    const key = `gql-two-${randomUUID()}`;
    const body = JSON.stringify({ query: PUT, variables: { input: { namespace: NS, key, value: 1 } } });
    for (const headers of [
      [['Authorization', `Bearer ${token}`], ['x-runner-auth', off.runnerToken], ['x-install-id', install.id]],
      [['x-runner-auth', off.runnerToken], ['x-install-id', install.id], ['Authorization', `Bearer ${await off.adminToken()}`]],
      [['x-runner-auth', off.runnerToken], ['x-install-id', install.id], ['Authorization', '']],
      [['x-runner-auth', ''], ['Authorization', `Bearer ${token}`]],
    ] as Array<Array<[string, string]>>) {
      const res = await raw(off.url, { method: 'POST', target: '/graphql', headers: [['Content-Type', 'application/json'], ...headers], body });
      expectRefusal(res, 401, 'UNAUTHENTICATED', JSON.stringify(headers.map(([k]) => k)));
    }
    await expectNotWritten(key);
  });

  it('a credential header given twice is two credentials: 401 on both doors', async () => {
    const key = `dup-${randomUUID()}`;
    const body = JSON.stringify({ query: PUT, variables: { input: { namespace: NS, key, value: 1 } } });
    for (const headers of [
      [['Authorization', `Bearer ${token}`], ['Authorization', `Bearer ${token}`]],
      [['Authorization', `Bearer ${token}`], ['Authorization', 'Bearer forged']],
      [['x-runner-auth', off.runnerToken], ['x-runner-auth', off.runnerToken], ['x-install-id', install.id]],
    ] as Array<Array<[string, string]>>) {
      const res = await raw(off.url, { method: 'POST', target: '/graphql', headers: [['Content-Type', 'application/json'], ...headers], body });
      expectRefusal(res, 401, 'UNAUTHENTICATED');
    }
    const rest = await raw(off.url, {
      method: 'POST',
      target: RUNNER + install.id,
      headers: [['Content-Type', 'application/json'], ['x-runner-auth', off.runnerToken], ['x-runner-auth', off.runnerToken]],
      body: JSON.stringify({ operation: 'put', namespace: NS, key, value: 1 }),
    });
    expect(rest.status).toBe(401);
    await expectNotWritten(key);
  });

  it('one credential is accepted on each door (control)', async () => {
    const gql = await raw(off.url, { method: 'POST', target: '/graphql', headers: [['Content-Type', 'application/json'], ['x-runner-auth', off.runnerToken], ['x-install-id', install.id]], body: JSON.stringify({ query: '{ __typename }' }) });
    expect(gql.status).toBe(200);
    const rest = await raw(off.url, { method: 'POST', target: RUNNER + install.id, headers: [['Content-Type', 'application/json'], ['x-runner-auth', off.runnerToken]], body: JSON.stringify({ operation: 'get', namespace: NS, key: 'none' }) });
    expect(rest.status).toBe(404);
  });
});

describe('refusals before execution answer in the media type the Accept header asks for', () => {
  const GQL = 'application/graphql-response+json';
  const JSON_TYPE = 'application/json';
  const CASES: Array<[string | null, string]> = [
    [null, JSON_TYPE],
    ['application/json', JSON_TYPE],
    [GQL, GQL],
    [`${GQL}, application/json`, GQL],
    [`application/json, ${GQL}`, JSON_TYPE],
    [`application/json;q=0.5, ${GQL}`, GQL],
    [`${GQL};q=0.4, application/json;q=0.6`, JSON_TYPE],
    [`application/*;q=0.5, ${GQL};q=0.9`, GQL],
    [`${GQL};q=0, */*`, JSON_TYPE],
    [`${GQL};charset=latin1, application/json`, JSON_TYPE],
    ['*/*', JSON_TYPE],
    ['text/event-stream', JSON_TYPE],
    ['text/html', JSON_TYPE],
    ['image/png', JSON_TYPE],
  ];

  it('the negotiation (also used for 503)', () => {
    for (const [accept, type] of CASES) expect(refusalMediaType(accept ?? undefined), String(accept)).toBe(type);
  });

  it('401, 403, 405, 413, 415 and the new 400s (Host, nesting, document) each follow Accept', async () => {
    const disabled = await off.createInstall({ enabled: false });
    const disabledToken = await disabled.token();
    const auth = (tok = token): [string, string] => ['Authorization', `Bearer ${tok}`];
    const json: [string, string] = ['Content-Type', 'application/json'];
    const refusals: Array<[number, string, (accept: Array<[string, string]>) => Promise<RawAnswer>]> = [
      [401, 'UNAUTHENTICATED', (a) => raw(off.url, { method: 'POST', target: '/graphql', headers: [json, ...a], body: '{"query":"{ __typename }"}' })],
      [403, 'FORBIDDEN', (a) => raw(off.url, { method: 'POST', target: '/graphql', headers: [json, auth(disabledToken), ...a], body: '{"query":"{ __typename }"}' })],
      [405, 'METHOD_NOT_ALLOWED', (a) => raw(off.url, { method: 'PUT', target: '/graphql', headers: [json, auth(), ...a], body: '{"query":"{ __typename }"}' })],
      [413, 'PAYLOAD_TOO_LARGE', (a) => raw(off.url, { method: 'POST', target: '/graphql', headers: [json, auth(), ...a], withholdBody: off.config.maxBodyBytes + 1 })],
      [415, 'UNSUPPORTED_MEDIA_TYPE', (a) => raw(off.url, { method: 'POST', target: '/graphql', headers: [['Content-Type', 'text/plain'], auth(), ...a], body: '{"query":"{ __typename }"}' })],
      [400, 'BAD_REQUEST', (a) => raw(off.url, { method: 'POST', target: '/graphql', host: 'a b', headers: [json, ...a], body: '{"query":"{ __typename }"}' })],
      [400, 'BAD_REQUEST', (a) => raw(off.url, { method: 'POST', target: '/graphql', headers: [json, auth(), ...a], body: `{"query":"{ __typename }","variables":{"a":${nestedArrays(200)}}}` })],
    ];
    for (const [status, code, send] of refusals) {
      for (const [accept, type] of CASES) {
        const res = await send(accept === null ? [] : [['Accept', accept]]);
        expectRefusal(res, status, code, `${status} with Accept ${accept}`);
        expect(mediaTypeOf(res), `${status} ${code} with Accept ${accept}`).toBe(type);
        expect(res.header('content-type')).toMatch(/charset=utf-8/);
      }
    }
  });

  it('the document-nesting 400 is a GraphQL answer and follows Accept as Yoga does', async () => {
    for (const [accept, type] of [[GQL, GQL], ['application/json', JSON_TYPE]] as const) {
      const res = await raw(off.url, {
        method: 'POST',
        target: '/graphql',
        headers: [['Content-Type', 'application/json'], ['Authorization', `Bearer ${token}`], ['Accept', accept]],
        body: JSON.stringify({ query: `{ record(namespace: "a", key: ${nestedArrays(3000, '"k"')}) { key } }` }),
      });
      expect(res.status).toBe(400);
      expect(mediaTypeOf(res)).toBe(type);
    }
  });

  it('a refusal has the media type a GraphQL response to the same Accept has (q-values and charset included)', async () => {
    for (const [accept] of CASES.filter(([a]) => a === null || (a !== 'text/event-stream' && a !== 'text/html' && a !== 'image/png'))) {
      const a: Array<[string, string]> = accept === null ? [] : [['Accept', accept]];
      const ok = await raw(off.url, { method: 'POST', target: '/graphql', headers: [['Content-Type', 'application/json'], ['Authorization', `Bearer ${token}`], ...a], body: '{"query":"{ __typename }"}' });
      const refused = await raw(off.url, { method: 'POST', target: '/graphql', headers: [['Content-Type', 'application/json'], ...a], body: '{"query":"{ __typename }"}' });
      expect(ok.status).toBe(200);
      expect(mediaTypeOf(refused), String(accept)).toBe(mediaTypeOf(ok));
    }
  });

  it('429 follows Accept too', async () => {
    const limited = await startTestApp({ STORAGE_RATE_LIMIT_PER_SECOND: '1', STORAGE_RATE_LIMIT_BURST: '1', STORAGE_GRAPHIQL: 'false' });
    try {
      const inst = await limited.createInstall();
      const tok = await inst.token();
      for (const [accept, type] of [[GQL, GQL], ['text/event-stream', JSON_TYPE], [null, JSON_TYPE]] as const) {
        let res: RawAnswer | undefined;
        for (let i = 0; i < 10 && res?.status !== 429; i++) {
          res = await raw(limited.url, {
            method: 'POST',
            target: '/graphql',
            headers: [['Content-Type', 'application/json'], ['Authorization', `Bearer ${tok}`], ...(accept === null ? [] : ([['Accept', accept]] as Array<[string, string]>))],
            body: '{"query":"{ __typename }"}',
          });
        }
        expectRefusal(res!, 429, 'RATE_LIMITED', String(accept));
        expect(mediaTypeOf(res!)).toBe(type);
        expect(res!.header('retry-after')).toMatch(/^\d+$/);
      }
    } finally {
      await limited.close();
    }
  });
});

describe('after all of the above', () => {
  it('nothing was written but the controls, and the server is healthy', async () => {
    const state = await adminView(off, install, NS, 'none');
    expect(state.usage.keys).toBe(0);
    expect((await fetch(`${off.url}/readyz`)).status).toBe(200);
    expect((await fetch(`${on.url}/readyz`)).status).toBe(200);
  });
});
