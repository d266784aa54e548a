/**
 * Global object ids (contract, "Reads": Relay global object identification), encoded and decoded
 * here and nowhere else. An Install's id is its UUID. A Namespace's id is `ns_` and a Record's id
 * `rec_`, each followed by the base64url (unpadded) of the compact JSON array of its parts:
 * `[installId, namespace]` and `[installId, namespace, key]`. The tenant is not part of an id: the
 * install names it. A record's id holds no revision, so it stays the same across writes and across
 * delete and re-create of its key; the `_` never occurs in a UUID, so these ids never look like one.
 *
 * Decoding accepts only what encoding produces (the text is encoded again and compared), so one
 * object has one id and an edited id is refused, never read as another object.
 */
import type { Limits } from '../config.js';
import { BadInputError, LimitExceededError } from './errors.js';
import { checkKey, checkNamespace } from './limits.js';
import { normalizeId } from './principal.js';

export type GlobalRef =
  | { type: 'Install'; installId: string }
  | { type: 'Namespace'; installId: string; namespace: string }
  | { type: 'Record'; installId: string; namespace: string; key: string };

const NAMESPACE_PREFIX = 'ns_';
const RECORD_PREFIX = 'rec_';

/** Longer than any id this encoding makes (a 256-code-point key is at most about 1.6 K characters); checked before any decoding work. */
const MAX_ID_LENGTH = 8192;

const encodeParts = (prefix: string, parts: readonly string[]) => prefix + Buffer.from(JSON.stringify(parts), 'utf8').toString('base64url');

export function namespaceGlobalId(installId: string, namespace: string): string {
  return encodeParts(NAMESPACE_PREFIX, [installId, namespace]);
}

export function recordGlobalId(installId: string, namespace: string, key: string): string {
  return encodeParts(RECORD_PREFIX, [installId, namespace, key]);
}

const BASE64URL_RE = /^[A-Za-z0-9_-]+$/;
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** What an id names, or BadInputError (BAD_USER_INPUT) when it is not an id this server could have issued. */
export function decodeGlobalId(id: string, limits: Pick<Limits, 'maxKeyLength'>): GlobalRef {
  if (typeof id !== 'string' || id.length > MAX_ID_LENGTH) throw malformed();
  const installId = normalizeId(id);
  // Ids are compared case-insensitively (contract, "Resource model"): any spelling of a UUID names that install.
  if (installId !== null && id.trim() === id) return { type: 'Install', installId };
  const prefix = id.startsWith(RECORD_PREFIX) ? RECORD_PREFIX : id.startsWith(NAMESPACE_PREFIX) ? NAMESPACE_PREFIX : null;
  if (prefix === null) throw malformed();
  const parts = decodeParts(id.slice(prefix.length), prefix === RECORD_PREFIX ? 3 : 2);
  const [install, namespace, key] = parts as [string, string, string | undefined];
  if (normalizeId(install) !== install) throw malformed();
  try {
    checkNamespace(namespace);
    if (key !== undefined) checkKey(key, limits);
  } catch (error) {
    if (error instanceof LimitExceededError) throw malformed();
    throw error;
  }
  // One object, one id: another spelling of the same parts (padding, spare bits, JSON spacing or escapes) is refused.
  if (encodeParts(prefix, parts) !== id) throw malformed();
  return key === undefined ? { type: 'Namespace', installId: install, namespace } : { type: 'Record', installId: install, namespace, key };
}

function decodeParts(text: string, count: number): string[] {
  if (!BASE64URL_RE.test(text)) throw malformed();
  let parsed: unknown;
  try {
    parsed = JSON.parse(utf8.decode(Buffer.from(text, 'base64url')));
  } catch {
    throw malformed();
  }
  if (!Array.isArray(parsed) || parsed.length !== count || !parsed.every((p) => typeof p === 'string')) throw malformed();
  return parsed as string[];
}

const malformed = () => new BadInputError('malformed id: pass an id exactly as the API returned it');
