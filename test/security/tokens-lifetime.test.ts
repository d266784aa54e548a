/**
 * Issue 11, tokens: `iat` is required; at most STORAGE_MAX_TOKEN_LIFETIME_SECONDS (default 24 h)
 * between iat and exp, so a token with `exp: 1e308` (which never expired) is refused; an iat in
 * the future cannot stretch it; a signature has one accepted spelling (unpadded base64url: a
 * trailing `=` was accepted).
 */
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp, type TestInstall } from '../support/app.js';
import { raw } from '../support/raw-http.js';
import { expectUnauthenticated } from './support.js';

let t: TestApp;
let short: TestApp;
let install: TestInstall;
let shortInstall: TestInstall;

beforeAll(async () => {
  [t, short] = await Promise.all([startTestApp(), startTestApp({ STORAGE_MAX_TOKEN_LIFETIME_SECONDS: '600' })]);
  [install, shortInstall] = await Promise.all([t.createInstall(), short.createInstall()]);
});
afterAll(async () => {
  await Promise.all([t?.close(), short?.close()]);
});

const now = () => Math.floor(Date.now() / 1000);
const DAY = 86_400;

function claims(app: TestApp, inst: TestInstall, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const c: Record<string, unknown> = {
    sub: 'lifetime-probe',
    tid: inst.tenantId,
    role: 'extension',
    iid: inst.id,
    scope: 'storage:read storage:write',
    aud: 'ext-storage',
    iat: now(),
    exp: now() + 3600,
    ...overrides,
  };
  for (const [k, v] of Object.entries(c)) if (v === undefined) delete c[k];
  return c;
}

function sign(app: TestApp, c: Record<string, unknown>): Promise<string> {
  return new SignJWT(c).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).sign(new TextEncoder().encode(app.secret));
}

const READ = '{ install { id } }';

async function expectAccepted(app: TestApp, token: string): Promise<void> {
  const res = await app.gql(READ, {}, { token });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  expect(res.body.data.install.id).toBeTruthy();
}

async function expectRefused(app: TestApp, token: string): Promise<void> {
  expectUnauthenticated(await app.gql(READ, {}, { token }));
}

describe('finding: a token with exp: 1e308 never expired', () => {
  it('exp: 1e308 is refused, for extensions and admins', async () => {
    await expectRefused(t, await sign(t, claims(t, install, { exp: 1e308 })));
    await expectRefused(t, await sign(t, { ...claims(t, install, { exp: 1e308 }), role: 'admin', iid: undefined }));
  });

  it('a token without iat is refused (iat is required)', async () => {
    await expectRefused(t, await sign(t, claims(t, install, { iat: undefined })));
    await expectRefused(t, await sign(t, claims(t, install, { iat: undefined, exp: now() + 60 })));
  });

  it('iat must be a number', async () => {
    await expectRefused(t, await sign(t, claims(t, install, { iat: String(now()) })));
  });

  it('exactly 24 h between iat and exp is accepted; one second more is refused', async () => {
    const iat = now();
    await expectAccepted(t, await sign(t, claims(t, install, { iat, exp: iat + DAY })));
    await expectRefused(t, await sign(t, claims(t, install, { iat, exp: iat + DAY + 1 })));
    await expectRefused(t, await sign(t, claims(t, install, { iat, exp: iat + 365 * DAY })));
  });

  it('an iat in the future cannot stretch the lifetime (an hour ahead is refused; within the 30 s tolerance is fine)', async () => {
    await expectRefused(t, await sign(t, claims(t, install, { iat: now() + 3600, exp: now() + 3600 + 60 })));
    await expectAccepted(t, await sign(t, claims(t, install, { iat: now() + 10, exp: now() + 600 })));
  });

  it('a token issued more than the lifetime ago is refused even if its exp were later', async () => {
    await expectRefused(t, await sign(t, claims(t, install, { iat: now() - DAY - 120, exp: now() + 60 })));
  });

  it('STORAGE_MAX_TOKEN_LIFETIME_SECONDS sets the bound (600 s: a 1 h token is refused, 10 min accepted)', async () => {
    await expectRefused(short, await sign(short, claims(short, shortInstall, { exp: now() + 3600 })));
    await expectAccepted(short, await sign(short, claims(short, shortInstall, { exp: now() + 600 })));
  });

  it('the tokens the project mints (1 h by default) are accepted (control)', async () => {
    await expectAccepted(t, await install.token());
  });
});

describe('finding: a signature with a trailing "=" was accepted', () => {
  it('padding, a second spelling of the same bytes, or characters outside base64url are refused; the canonical token is accepted', async () => {
    const token = await sign(t, claims(t, install));
    await expectAccepted(t, token);
    const [header, payload, signature] = token.split('.') as [string, string, string];
    // 32 bytes are 43 characters whose last carries 2 unused bits: flipping them spells the same bytes.
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const last = alphabet.indexOf(signature.at(-1)!);
    const sameBytes = signature.slice(0, -1) + alphabet[last ^ 1]!;
    expect(Buffer.from(sameBytes, 'base64url').equals(Buffer.from(signature, 'base64url'))).toBe(true);
    for (const variant of [`${signature}=`, `${signature}==`, sameBytes, signature.replace(/-/g, '+').replace(/_/g, '/') + (/[-_]/.test(signature) ? '' : '+'), ` ${signature}`.trim() + '.']) {
      await expectRefused(t, `${header}.${payload}.${variant}`);
    }
  });

  it('also over a raw socket, on GET (the door does not matter)', async () => {
    const token = await sign(t, claims(t, install));
    const res = await raw(t.url, { target: `/graphql?query=${encodeURIComponent(READ)}`, headers: [['Authorization', `Bearer ${token}=`], ['Accept', 'application/json']] });
    expect(res.status).toBe(401);
    expect(res.json.errors[0].extensions.code).toBe('UNAUTHENTICATED');
  });
});
