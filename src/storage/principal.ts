/**
 * Who is calling, once the credential has been checked (src/auth builds it).
 *
 * `expiresAt`: when a token-based principal's credential stops being accepted (epoch ms: the token's
 * exp plus the clock tolerance); absent for the Runner's shared secret and callers built in process.
 * A request checks the credential once, at its start; a long-lived one (a subscription) ends when
 * `expiresAt` passes (src/storage/follow.ts).
 */
export type Principal =
  | { kind: 'admin'; tenantId: string; actor: string; expiresAt?: number }
  | { kind: 'extension'; tenantId: string; installId: string; actor: string; scope: { read: boolean; write: boolean }; expiresAt?: number }
  | { kind: 'runner'; tenantId: string; installId: string; actor: 'runner'; expiresAt?: undefined };

/** A principal plus what the doors know of the request, handed to every core call. */
export interface Caller {
  /** Per-request memo of install lookups (GraphQL batches field resolvers through it). */
  installs?: Map<string, Promise<import("./installs.js").Install | undefined>>;
  principal: Principal;
  requestId: string | null;
  /**
   * Set by the HTTP doors: runs a wait during which the request holds no database connection (its
   * write queued behind its install's call, src/storage/write-combiner.ts), giving the request's
   * place among its install's requests in flight to the next in line meanwhile (InflightSlot.aside).
   */
  whileQueued?: <T>(wait: Promise<T>) => Promise<T>;
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Lower-cased UUID, or null when malformed (a malformed id is treated like an unknown one). */
export function normalizeId(id: string | null | undefined): string | null {
  if (typeof id !== 'string') return null;
  const lower = id.trim().toLowerCase();
  return UUID_RE.test(lower) ? lower : null;
}
