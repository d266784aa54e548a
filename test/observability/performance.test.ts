/**
 * Guards for the speed work (bench/README.md): shortcuts taken for speed must not change what a
 * caller sees. The authenticator remembers verified tokens; a remembered token still expires.
 */
import { randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { AUDIENCE, CLOCK_TOLERANCE_SECONDS, createAuthenticator } from '../../src/auth/credentials.js';

const secret = 'performance-test-secret-0123456789abcdef';
const tenantId = randomUUID();

function sign(claims: Record<string, unknown>, key = secret): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(key));
}

const now = () => Math.floor(Date.now() / 1000);

describe('the verified-token memo of the authenticator', () => {
  const authenticator = createAuthenticator({ jwtSecret: secret, runnerTokens: [], findInstall: async () => undefined });
  const use = (token: string) => authenticator.authenticate({ authorization: `Bearer ${token}` });

  it('accepts a token again while it is valid, and refuses it once it has expired (tolerance included)', async () => {
    // Valid for about 1.5 s more: exp lies just inside the clock tolerance.
    const exp = now() - CLOCK_TOLERANCE_SECONDS + 2;
    const token = await sign({ aud: AUDIENCE, sub: 'admin', tid: tenantId, role: 'admin', iat: now(), exp });
    await expect(use(token)).resolves.toMatchObject({ kind: 'admin', tenantId });
    await expect(use(token)).resolves.toMatchObject({ kind: 'admin', tenantId });
    await new Promise((r) => setTimeout(r, Math.max(0, (exp + CLOCK_TOLERANCE_SECONDS) * 1000 - Date.now() + 50)));
    await expect(use(token)).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
  });

  it('never remembers a refused token: a bad signature stays refused', async () => {
    const forged = await sign({ aud: AUDIENCE, sub: 'admin', tid: tenantId, role: 'admin', iat: now(), exp: now() + 3600 }, 'another-secret-0123456789abcdef');
    await expect(use(forged)).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
    await expect(use(forged)).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
  });

  it('is per secret: a token verified by one authenticator means nothing to another', async () => {
    const token = await sign({ aud: AUDIENCE, sub: 'admin', tid: tenantId, role: 'admin', iat: now(), exp: now() + 3600 });
    await expect(use(token)).resolves.toMatchObject({ kind: 'admin' });
    const other = createAuthenticator({ jwtSecret: 'a-rotated-secret-0123456789abcdef', runnerTokens: [], findInstall: async () => undefined });
    await expect(other.authenticate({ authorization: `Bearer ${token}` })).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
  });
});
