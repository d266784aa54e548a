/** Credentials (JWT or Runner token) → one Principal. Every door calls authenticate(). */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { SignJWT, jwtVerify, errors as joseErrors } from 'jose';
import { ForbiddenError, UnauthenticatedError } from '../storage/errors.js';
import type { Install } from '../storage/installs.js';
import { normalizeId, type Principal } from '../storage/principal.js';

export const AUDIENCE = 'ext-storage';
export const CLOCK_TOLERANCE_SECONDS = 30;
/** The longest a token may live (exp - iat) unless the operator says otherwise. */
export const DEFAULT_MAX_TOKEN_LIFETIME_SECONDS = 86_400;

export interface CredentialHeaders {
  /** Every Authorization header of the request, joined with ", " (present, even empty, counts as a credential). */
  authorization?: string | null;
  /** Every x-runner-auth header, joined with ", " (so a repeated header never matches a token). */
  runnerAuth?: string | null;
  installId?: string | null;
  /** The Runner REST door: only x-runner-auth is a credential there, and a bearer token beside it is refused. */
  runnerDoor?: boolean;
}

/**
 * The credential headers of a request as sent: repeated headers are joined (Node keeps only the
 * first Authorization), so two credentials of one kind are never silently reduced to one.
 */
export function credentialHeadersOf(req: IncomingMessage): CredentialHeaders {
  const seen: Record<'authorization' | 'x-runner-auth' | 'x-install-id', string[]> = { authorization: [], 'x-runner-auth': [], 'x-install-id': [] };
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (name === 'authorization' || name === 'x-runner-auth' || name === 'x-install-id') seen[name].push(raw[i + 1]!);
  }
  const joined = (values: string[]) => (values.length === 0 ? undefined : values.join(', '));
  return { authorization: joined(seen.authorization), runnerAuth: joined(seen['x-runner-auth']), installId: joined(seen['x-install-id']) };
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
  /** STORAGE_MAX_TOKEN_LIFETIME_SECONDS: the most seconds a token may have between iat and exp. */
  maxTokenLifetimeSeconds?: number;
}

const SCOPES = new Set(['storage:read', 'storage:write']);

function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

/** Verified tokens remembered per authenticator (a client reuses its token until it expires). */
const VERIFIED_TOKENS_MAX = 10_000;

export function createAuthenticator(opts: AuthenticatorOptions): Authenticator {
  const key = new TextEncoder().encode(opts.jwtSecret);
  const maxLifetime = opts.maxTokenLifetimeSeconds ?? DEFAULT_MAX_TOKEN_LIFETIME_SECONDS;
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
    const claims = await verifyToken(token, key, maxLifetime);
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
      const hasBearer = headers.authorization !== undefined && headers.authorization !== null;
      const hasRunner = headers.runnerAuth !== undefined && headers.runnerAuth !== null;
      // Two credentials are ambiguous: refuse rather than pick one of them silently (every door).
      if (hasBearer && (hasRunner || headers.runnerDoor)) throw new UnauthenticatedError('send one credential: Authorization or x-runner-auth, not both');
      if (hasRunner || headers.runnerDoor) {
        const runnerAuth = headers.runnerAuth ?? '';
        if (runnerDigests.length === 0 || !runnerTokenMatches(runnerAuth)) {
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
      const expiresAt = (claims.exp + CLOCK_TOLERANCE_SECONDS) * 1000;
      if (claims.role === 'admin') return { kind: 'admin', tenantId: claims.tid, actor: claims.sub, expiresAt };
      doorsClosed();
      const install = await activeInstall(claims.iid!, claims.tid);
      return {
        kind: 'extension',
        tenantId: install.tenantId,
        installId: install.id,
        actor: claims.sub,
        scope: { read: claims.scopes.has('storage:read'), write: claims.scopes.has('storage:write') },
        expiresAt,
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

/** A JWS segment in its one accepted encoding: unpadded base64url whose unused bits are zero. */
function isCanonicalBase64url(segment: string): boolean {
  return /^[A-Za-z0-9_-]+$/.test(segment) && Buffer.from(segment, 'base64url').toString('base64url') === segment;
}

async function verifyToken(token: string, key: Uint8Array, maxLifetime: number): Promise<Claims> {
  // jose decodes base64url leniently ("=" padding, non-zero spare bits): one signature would have
  // several accepted spellings, so a token is refused unless its signature is spelled canonically.
  const signature = token.slice(token.lastIndexOf('.') + 1);
  if (!isCanonicalBase64url(signature)) throw new UnauthenticatedError('invalid token');
  let payload: Record<string, unknown>;
  try {
    ({ payload } = await jwtVerify(token, key, {
      algorithms: ['HS256'],
      audience: AUDIENCE,
      clockTolerance: CLOCK_TOLERANCE_SECONDS,
      requiredClaims: ['exp', 'sub', 'iat'],
      // Also refuses an iat in the future (beyond the tolerance), which would stretch the lifetime.
      maxTokenAge: maxLifetime,
    }));
  } catch (error) {
    const reason = error instanceof joseErrors.JWTExpired ? 'token expired' : 'invalid token';
    throw new UnauthenticatedError(reason);
  }
  // A token lives at most maxLifetime seconds: exp: 1e308 would otherwise never expire.
  if ((payload.exp as number) - (payload.iat as number) > maxLifetime) {
    throw new UnauthenticatedError(`token lifetime (exp - iat) above ${maxLifetime} seconds`);
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
