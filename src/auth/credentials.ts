/** Credentials (JWT or Runner token) → one Principal. Every door calls authenticate(). */
import { createHash, timingSafeEqual } from 'node:crypto';
import { SignJWT, jwtVerify, errors as joseErrors } from 'jose';
import { ForbiddenError, UnauthenticatedError } from '../storage/errors.js';
import type { Install } from '../storage/installs.js';
import { normalizeId, type Principal } from '../storage/principal.js';

export const AUDIENCE = 'ext-storage';
export const CLOCK_TOLERANCE_SECONDS = 30;

export interface CredentialHeaders {
  authorization?: string | null;
  runnerAuth?: string | null;
  installId?: string | null;
}

export interface Authenticator {
  authenticate(headers: CredentialHeaders): Promise<Principal>;
}

export interface AuthenticatorOptions {
  jwtSecret: string;
  runnerTokens: readonly string[];
  /** Looks an install up by (normalised) id. */
  findInstall(id: string): Promise<Install | undefined>;
  /** The operator's kill switch: extension tokens and the Runner are refused, admins keep working. */
  extensionDoorsDisabled?: boolean;
}

const SCOPES = new Set(['storage:read', 'storage:write']);

function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

/** Verified tokens remembered per authenticator (a client reuses its token until it expires). */
const VERIFIED_TOKENS_MAX = 10_000;

export function createAuthenticator(opts: AuthenticatorOptions): Authenticator {
  const key = new TextEncoder().encode(opts.jwtSecret);
  const runnerDigests = opts.runnerTokens.map(digest);
  // jose's HMAC goes through WebCrypto: 0.1–0.3 ms of CPU per request (bench/README.md). A token
  // seen before is trusted again until its exp (plus the clock tolerance), re-checked on every use.
  const verified = new Map<string, Claims>();

  async function verifyOnce(token: string): Promise<Claims> {
    const known = verified.get(token);
    if (known) {
      if (Date.now() < (known.exp + CLOCK_TOLERANCE_SECONDS) * 1000) return known;
      verified.delete(token);
    }
    const claims = await verifyToken(token, key);
    if (verified.size >= VERIFIED_TOKENS_MAX) verified.delete(verified.keys().next().value!);
    verified.set(token, claims);
    return claims;
  }

  function runnerTokenMatches(token: string): boolean {
    const d = digest(token);
    // Compare against every configured token, in constant time each, without stopping early.
    let match = false;
    for (const candidate of runnerDigests) match = timingSafeEqual(d, candidate) || match;
    return match;
  }

  async function activeInstall(installId: string, tenantId: string | null): Promise<Install> {
    const install = await opts.findInstall(installId);
    if (!install || !install.enabled || (tenantId !== null && install.tenantId !== tenantId)) {
      throw new ForbiddenError('install is unknown or disabled');
    }
    return install;
  }

  function doorsClosed(): void {
    if (opts.extensionDoorsDisabled) {
      throw new ForbiddenError('extension storage is switched off by the operator; data is kept');
    }
  }

  return {
    async authenticate(headers) {
      if (headers.runnerAuth !== undefined && headers.runnerAuth !== null) {
        // Two credentials are ambiguous: refuse rather than pick one of them silently.
        if (headers.authorization) throw new UnauthenticatedError('send one credential: Authorization or x-runner-auth, not both');
        if (runnerDigests.length === 0 || !runnerTokenMatches(headers.runnerAuth)) {
          throw new UnauthenticatedError('invalid runner credential');
        }
        doorsClosed();
        if (!headers.installId) throw new ForbiddenError('a Runner request must name its install (x-install-id)');
        const id = normalizeId(headers.installId);
        if (!id) throw new ForbiddenError('install is unknown or disabled');
        const install = await activeInstall(id, null);
        return { kind: 'runner', tenantId: install.tenantId, installId: install.id, actor: 'runner' };
      }
      const auth = headers.authorization;
      const match = auth ? /^Bearer\s+(\S+)\s*$/i.exec(auth) : null;
      if (!match) throw new UnauthenticatedError('missing bearer token');
      const claims = await verifyOnce(match[1]!);
      if (claims.role === 'admin') return { kind: 'admin', tenantId: claims.tid, actor: claims.sub };
      doorsClosed();
      const install = await activeInstall(claims.iid!, claims.tid);
      return {
        kind: 'extension',
        tenantId: install.tenantId,
        installId: install.id,
        actor: claims.sub,
        scope: { read: claims.scopes.has('storage:read'), write: claims.scopes.has('storage:write') },
      };
    },
  };
}

interface Claims {
  /** Expiry, seconds since the epoch (required and checked by jwtVerify). */
  exp: number;
  sub: string;
  tid: string;
  role: 'admin' | 'extension';
  iid: string | null;
  scopes: Set<string>;
}

async function verifyToken(token: string, key: Uint8Array): Promise<Claims> {
  let payload: Record<string, unknown>;
  try {
    ({ payload } = await jwtVerify(token, key, {
      algorithms: ['HS256'],
      audience: AUDIENCE,
      clockTolerance: CLOCK_TOLERANCE_SECONDS,
      requiredClaims: ['exp', 'sub'],
    }));
  } catch (error) {
    const reason = error instanceof joseErrors.JWTExpired ? 'token expired' : 'invalid token';
    throw new UnauthenticatedError(reason);
  }
  const exp = payload.exp as number;
  const sub = payload.sub;
  const tid = normalizeId(typeof payload.tid === 'string' ? payload.tid : null);
  const role = payload.role;
  if (typeof sub !== 'string' || sub.length === 0 || sub.length > 256 || !tid) throw new UnauthenticatedError('invalid token claims');
  if (role === 'admin') return { exp, sub, tid, role, iid: null, scopes: new Set() };
  if (role !== 'extension') throw new UnauthenticatedError('invalid token role');
  const iid = normalizeId(typeof payload.iid === 'string' ? payload.iid : null);
  if (!iid || typeof payload.scope !== 'string') throw new UnauthenticatedError('extension tokens need iid and scope');
  const scopes = new Set(payload.scope.split(/\s+/).filter((s) => SCOPES.has(s)));
  return { exp, sub, tid, role, iid, scopes };
}

export interface MintOptions {
  sub: string;
  tid: string;
  role: 'admin' | 'extension';
  iid?: string;
  scope?: string;
  expiresIn?: string | number;
}

/** Signs a token the gateway accepts (used by `npm run token`, dev mode and tests). */
export function mintToken(secret: string, opts: MintOptions): Promise<string> {
  const claims: Record<string, unknown> = { tid: opts.tid, role: opts.role };
  if (opts.iid) claims.iid = opts.iid;
  if (opts.scope !== undefined) claims.scope = opts.scope;
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(opts.sub)
    .setAudience(AUDIENCE)
    .setIssuedAt()
    .setExpirationTime(opts.expiresIn ?? '1h')
    .sign(new TextEncoder().encode(secret));
}
