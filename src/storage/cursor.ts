/** Opaque page cursors: base64url JSON tagged with what they page through. */
import { BadInputError } from './errors.js';

export function encodeCursor(kind: string, scopeTag: string, position: string | number): string {
  return Buffer.from(JSON.stringify([kind, scopeTag, position]), 'utf8').toString('base64url');
}

export function decodeCursor<T extends string | number>(cursor: string, kind: string, scopeTag: string, type: 'string' | 'number'): T {
  try {
    if (typeof cursor !== 'string' || cursor.length > 2048 || !/^[A-Za-z0-9_-]*$/.test(cursor)) throw new Error();
    const parsed: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (
      Array.isArray(parsed) &&
      parsed.length === 3 &&
      parsed[0] === kind &&
      parsed[1] === scopeTag &&
      typeof parsed[2] === type &&
      // A position is compared with a column: a number that column cannot hold is forged.
      (type !== 'number' || Number.isSafeInteger(parsed[2])) &&
      (type !== 'string' || ((parsed[2] as string).isWellFormed() && !(parsed[2] as string).includes('\u0000')))
    ) {
      return parsed[2] as T;
    }
  } catch {
    // fall through
  }
  throw new BadInputError('malformed or foreign cursor');
}
