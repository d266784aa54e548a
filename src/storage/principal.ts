/** Who is calling, once the credential has been checked (src/auth builds it). */
export type Principal =
  | { kind: 'admin'; tenantId: string; actor: string }
  | { kind: 'extension'; tenantId: string; installId: string; actor: string; scope: { read: boolean; write: boolean } }
  | { kind: 'runner'; tenantId: string; installId: string; actor: 'runner' };

/** A principal plus what the doors know of the request, handed to every core call. */
export interface Caller {
  /** Per-request memo of install lookups (GraphQL batches field resolvers through it). */
  installs?: Map<string, Promise<import("./installs.js").Install | undefined>>;
  principal: Principal;
  requestId: string | null;
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Lower-cased UUID, or null when malformed (a malformed id is treated like an unknown one). */
export function normalizeId(id: string | null | undefined): string | null {
  if (typeof id !== 'string') return null;
  const lower = id.trim().toLowerCase();
  return UUID_RE.test(lower) ? lower : null;
}
