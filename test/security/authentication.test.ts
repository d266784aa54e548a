import { randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type GqlResult, type TestApp, type TestInstall } from '../support/app.js';
import { adminView, expectNoInternals, expectUnauthenticated, PUT } from './support.js';

let t: TestApp;
let install: TestInstall;
const NS = 'auth';

beforeAll(async () => {
  t = await startTestApp();
  install = await t.createInstall();
  // One record the refused callers could have read.
  const res = await t.gql(PUT, { input: { namespace: NS, key: 'existing', value: { secret: 'seen-only-by-valid-callers' } } }, { token: await install.token() });
  expect(res.body.data.putRecord.__typename).toBe('PutRecordSuccess');
});
afterAll(async () => {
  await t?.close();
});

const now = () => Math.floor(Date.now() / 1000);

/** Claims of a valid extension token for `install`; tests remove or replace what they probe. */
function extensionClaims(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    sub: 'probe',
    tid: install.tenantId,
    role: 'extension',
    iid: install.id,
    scope: 'storage:read storage:write',
    aud: 'ext-storage',
    exp: now() + 3600,
    iat: now(),
    ...overrides,
  };
}

function without(claims: Record<string, unknown>, name: string): Record<string, unknown> {
  const copy = { ...claims };
  delete copy[name];
  return copy;
}

function sign(claims: Record<string, unknown>, opts: { secret?: string; alg?: string } = {}): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: opts.alg ?? 'HS256', typ: 'JWT' })
    .sign(new TextEncoder().encode(opts.secret ?? t.secret));
}

function base64url(json: unknown): string {
  return Buffer.from(JSON.stringify(json)).toString('base64url');
}

/**
 * Tries a write and a read with the given credential; returns the response after checking the
 * write left no trace. Each probe writes its own key so a leak shows up precisely.
 */
async function probe(auth: { token?: string; headers?: Record<string, string> }): Promise<GqlResult> {
  const key = `probe-${randomUUID()}`;
  const res = await t.gql(
    `mutation($key: String!) {
      putRecord(input: { namespace: "${NS}", key: $key, value: { written: true } }) { __typename }
    }`,
    { key },
    auth,
  );
  const read = await t.gql(`{ record(namespace: "${NS}", key: "existing") { value } }`, {}, auth);
  expect(read.status).toBe(res.status);
  if (res.status === 401) {
    expectUnauthenticated(read);
    expect(JSON.stringify(read.body)).not.toContain('seen-only-by-valid-callers');
  }
  const state = await adminView(t, install, NS, key);
  if (res.status === 401) {
    expect(state.record).toBeNull();
    expect(state.usage.keys).toBe(1);
  }
  return res;
}

async function expectRefused(auth: { token?: string; headers?: Record<string, string> }): Promise<void> {
  const res = await probe(auth);
  expectUnauthenticated(res);
}

async function expectAccepted(auth: { token?: string; headers?: Record<string, string> }): Promise<void> {
  const res = await t.gql(`{ record(namespace: "${NS}", key: "existing") { value } }`, {}, auth);
  expect(res.status).toBe(200);
  expect(res.body.errors).toBeUndefined();
  expect(res.body.data.record.value).toEqual({ secret: 'seen-only-by-valid-callers' });
}

describe('a valid extension token (control)', () => {
  it('reads the install it names', async () => {
    await expectAccepted({ token: await sign(extensionClaims()) });
  });
});

describe('a request without a credential is 401 UNAUTHENTICATED', () => {
  it('no Authorization header at all', async () => {
    const res = await probe({});
    expectUnauthenticated(res);
    expect(res.headers.get('www-authenticate')).toBe('Bearer');
  });

  it('an empty Bearer value', async () => {
    await expectRefused({ headers: { authorization: 'Bearer ' } });
  });

  it('a Basic credential instead of a Bearer token', async () => {
    await expectRefused({ headers: { authorization: `Basic ${Buffer.from('admin:admin').toString('base64')}` } });
  });
});

describe('a token that is not signed by the gateway secret is 401', () => {
  it('a forged signature (signed with another secret)', async () => {
    await expectRefused({ token: await sign(extensionClaims(), { secret: 'another-secret-of-sufficient-length-0123456789' }) });
  });

  it('an admin token signed with another secret', async () => {
    await expectRefused({ token: await sign({ ...extensionClaims({ role: 'admin' }), iid: undefined }, { secret: 'x'.repeat(64) }) });
  });

  it('a valid token whose payload was altered after signing', async () => {
    const token = await sign(extensionClaims({ scope: 'storage:read' }));
    const [header, , signature] = token.split('.');
    const altered = `${header}.${base64url(extensionClaims({ scope: 'storage:read storage:write' }))}.${signature}`;
    await expectRefused({ token: altered });
  });

  it('alg "none" with an empty signature', async () => {
    const unsigned = `${base64url({ alg: 'none', typ: 'JWT' })}.${base64url(extensionClaims())}.`;
    await expectRefused({ token: unsigned });
  });

  it('an admin token with alg "none"', async () => {
    const unsigned = `${base64url({ alg: 'none', typ: 'JWT' })}.${base64url({ ...without(extensionClaims(), 'iid'), role: 'admin' })}.`;
    const res = await t.gql(`{ installs { edges { node { id } } } }`, {}, { token: unsigned });
    expectUnauthenticated(res);
  });

  it('an HS512 token signed with the right secret (only HS256 is accepted)', async () => {
    await expectRefused({ token: await sign(extensionClaims(), { alg: 'HS512' }) });
  });

  it('an HS384 token signed with the right secret', async () => {
    await expectRefused({ token: await sign(extensionClaims(), { alg: 'HS384' }) });
  });
});

describe('expiry is enforced with at most 30 s of clock tolerance', () => {
  it('a token that expired 2 minutes ago is 401', async () => {
    await expectRefused({ token: await sign(extensionClaims({ exp: now() - 120, iat: now() - 3600 })) });
  });

  it('a token that expired 10 s ago is still accepted', async () => {
    await expectAccepted({ token: await sign(extensionClaims({ exp: now() - 10, iat: now() - 3600 })) });
  });

  it('a token without exp is 401', async () => {
    await expectRefused({ token: await sign(without(extensionClaims(), 'exp')) });
  });

  it('a token not valid before a time 2 minutes ahead is 401', async () => {
    await expectRefused({ token: await sign(extensionClaims({ nbf: now() + 120 })) });
  });
});

describe('the audience must be ext-storage', () => {
  it('a wrong audience is 401', async () => {
    await expectRefused({ token: await sign(extensionClaims({ aud: 'another-service' })) });
  });

  it('a missing audience is 401', async () => {
    await expectRefused({ token: await sign(without(extensionClaims(), 'aud')) });
  });

  it('an audience array without ext-storage is 401', async () => {
    await expectRefused({ token: await sign(extensionClaims({ aud: ['a', 'b'] })) });
  });

  it('an audience array containing ext-storage is accepted', async () => {
    await expectAccepted({ token: await sign(extensionClaims({ aud: ['another-service', 'ext-storage'] })) });
  });
});

describe('a token missing a required claim or with a malformed one is 401', () => {
  it('missing sub', async () => {
    await expectRefused({ token: await sign(without(extensionClaims(), 'sub')) });
  });

  it('an empty sub', async () => {
    await expectRefused({ token: await sign(extensionClaims({ sub: '' })) });
  });

  it('missing tid', async () => {
    await expectRefused({ token: await sign(without(extensionClaims(), 'tid')) });
  });

  it('a malformed tid', async () => {
    await expectRefused({ token: await sign(extensionClaims({ tid: 'not-a-uuid' })) });
  });

  it('a tid that is not a string', async () => {
    await expectRefused({ token: await sign(extensionClaims({ tid: 42 })) });
  });

  it('a role other than admin or extension', async () => {
    await expectRefused({ token: await sign(extensionClaims({ role: 'superuser' })) });
  });

  it('a missing role', async () => {
    await expectRefused({ token: await sign(without(extensionClaims(), 'role')) });
  });

  it('a role given in another case', async () => {
    await expectRefused({ token: await sign(extensionClaims({ role: 'Admin' })) });
  });

  it('an extension token without iid', async () => {
    await expectRefused({ token: await sign(without(extensionClaims(), 'iid')) });
  });

  it('an extension token with a malformed iid', async () => {
    await expectRefused({ token: await sign(extensionClaims({ iid: 'install-1' })) });
  });

  it('an extension token without scope', async () => {
    await expectRefused({ token: await sign(without(extensionClaims(), 'scope')) });
  });

  it('an extension token whose scope is not a string', async () => {
    await expectRefused({ token: await sign(extensionClaims({ scope: ['storage:read', 'storage:write'] })) });
  });
});

describe('a credential that is not a token at all is 401', () => {
  for (const [name, value] of [
    ['a garbage Bearer value', 'Bearer garbage'],
    ['three garbage segments', 'Bearer abc.def.ghi'],
    ['a JSON payload that is not an object', `Bearer ${base64url({ alg: 'HS256' })}.${Buffer.from('"just a string"').toString('base64url')}.AAAA`],
    ['a Bearer value with two tokens', 'Bearer aaa.bbb.ccc ddd.eee.fff'],
    ['a very long Bearer value', `Bearer ${'a'.repeat(6000)}.${'b'.repeat(6000)}.${'c'.repeat(100)}`],
  ] as const) {
    it(name, async () => {
      await expectRefused({ headers: { authorization: value } });
    });
  }
});

describe('a wrong Runner token is 401', () => {
  it('an unknown x-runner-auth with a valid x-install-id', async () => {
    await expectRefused({ headers: { 'x-runner-auth': 'not-a-runner-token', 'x-install-id': install.id } });
  });

  it('a prefix of the right Runner token', async () => {
    await expectRefused({ headers: { 'x-runner-auth': t.runnerToken.slice(0, -1), 'x-install-id': install.id } });
  });

  it('an empty x-runner-auth', async () => {
    await expectRefused({ headers: { 'x-runner-auth': '', 'x-install-id': install.id } });
  });

  it('the right Runner token is accepted (control)', async () => {
    await expectAccepted({ headers: { 'x-runner-auth': t.runnerToken, 'x-install-id': install.id } });
  });

  it('the second configured Runner token is accepted too (rotation)', async () => {
    await expectAccepted({ headers: { 'x-runner-auth': 'second-runner-token', 'x-install-id': install.id } });
  });

  it('the Runner REST door refuses a wrong token with 401 UNAUTHORIZED and writes nothing', async () => {
    const key = `rest-${randomUUID()}`;
    const res = await fetch(`${t.url}/api/internal/ext-storage/install/${install.id}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-runner-auth': 'wrong' },
      body: JSON.stringify({ operation: 'put', namespace: NS, key, value: 1 }),
    });
    const text = await res.text();
    expect(res.status).toBe(401);
    expect(JSON.parse(text)).toMatchObject({ code: 'UNAUTHORIZED' });
    expectNoInternals({ status: res.status, text });
    expect((await adminView(t, install, NS, key)).record).toBeNull();
  });
});

describe('a refused credential leaves no trace', () => {
  it('no audit event was written by any refused request', async () => {
    const state = await adminView(t, install, NS, 'existing');
    // The install's registration and the one put of the setup: nothing else.
    expect(state.auditOperations).toEqual(['putRecord', 'upsertInstall']);
    expect(state.usage.keys).toBe(1);
  });
});
