import { isUtf8 } from 'node:buffer';
import type { IncomingMessage } from 'node:http';
import { createGraphQLError, type Plugin } from 'graphql-yoga';
import { MAX_JSON_DEPTH } from '../storage/limits.js';

export class BodyTooLargeError extends Error {}

/** Reads a request body, refusing (before buffering it all) one above `limit` bytes. */
export async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) throw new BodyTooLargeError();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new BodyTooLargeError();
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/**
 * JSON text must be UTF-8 (RFC 8259 §8.1). Decoding invalid bytes leniently would store U+FFFD in
 * place of what the caller sent, so a body that is not UTF-8 is refused instead of repaired.
 */
export function isUtf8Body(body: Buffer): boolean {
  return isUtf8(body);
}

/**
 * True for `application/json` (any case, parameters allowed; a charset must be UTF-8): the only
 * body a GraphQL POST may carry. A list of types is not one type.
 */
export function isJsonMediaType(contentType: string | undefined): boolean {
  if (!contentType || contentType.includes(',')) return false;
  const [type = '', ...params] = contentType.split(';').map((p) => p.trim().toLowerCase());
  if (type !== 'application/json') return false;
  return params.every((p) => !p.startsWith('charset=') || p.slice(8).replace(/"/g, '') === 'utf-8');
}

/**
 * Nesting a request's JSON may have: a stored value's MAX_JSON_DEPTH plus the request's own
 * envelope (body, variables, input, items, item: a deepest allowed value must still reach the core,
 * which answers LimitExceeded valueFormat beyond MAX_JSON_DEPTH).
 */
export const MAX_REQUEST_JSON_DEPTH = MAX_JSON_DEPTH + 8;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * Whether JSON text nests arrays and objects deeper than `max`, by one pass over the bytes (strings
 * skipped): JSON.parse of 2 million levels costs a second, this costs microseconds. Malformed
 * text is left to the parser.
 */
export function jsonNestingExceeds(text: Buffer, max: number): boolean {
  let depth = 0;
  const n = text.length;
  let i = 0;
  while (i < n) {
    const c = text[i]!;
    if (c === QUOTE) {
      // A string ends at the next quote preceded by an even number of backslashes (indexOf is native: values are mostly strings).
      let from = i + 1;
      for (;;) {
        const q = text.indexOf(QUOTE, from);
        if (q < 0) return false;
        let backslashes = 0;
        for (let k = q - 1; k > i && text[k] === BACKSLASH; k--) backslashes++;
        if ((backslashes & 1) === 0) {
          i = q + 1;
          break;
        }
        from = q + 1;
      }
      continue;
    }
    if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return true;
    } else if (c === 0x5d || c === 0x7d) {
      depth--;
    }
    i++;
  }
  return false;
}

/**
 * Nesting a GraphQL document may have ({, [ and ( together): far above any selection the depth
 * limit lets through and a literal of MAX_JSON_DEPTH levels, far below what overflows graphql-js's
 * recursive parser (about 1,500 levels of `[` under armor: a RangeError, answered INTERNAL).
 */
export const MAX_DOCUMENT_NESTING = 2 * MAX_JSON_DEPTH;

/** Whether a GraphQL document nests brackets deeper than `max` (strings, block strings and comments skipped). */
export function documentNestingExceeds(source: string, max: number): boolean {
  let depth = 0;
  const n = source.length;
  for (let i = 0; i < n; i++) {
    const c = source.charCodeAt(i);
    if (c === 0x23 /* # */) {
      while (i < n && source.charCodeAt(i) !== 0x0a && source.charCodeAt(i) !== 0x0d) i++;
    } else if (c === QUOTE) {
      if (source.startsWith('"""', i)) {
        // A block string ends at the next """ not escaped as \""".
        for (i += 3; i < n; i++) {
          if (source.charCodeAt(i) === BACKSLASH && source.startsWith('"""', i + 1)) i += 3;
          else if (source.startsWith('"""', i)) {
            i += 2;
            break;
          }
        }
      } else {
        for (i++; i < n; i++) {
          const s = source.charCodeAt(i);
          if (s === BACKSLASH) i++;
          else if (s === QUOTE || s === 0x0a || s === 0x0d) break;
        }
      }
    } else if (c === 0x7b || c === 0x5b || c === 0x28) {
      if (++depth > max) return true;
    } else if (c === 0x7d || c === 0x5d || c === 0x29) {
      depth--;
    }
  }
  return false;
}

/**
 * Refuses, before graphql-js parses it, a document nested deeper than MAX_DOCUMENT_NESTING: a
 * 3,000-level literal overflowed the parser's recursion (an INTERNAL answer). A request error:
 * HTTP 400, GRAPHQL_PARSE_FAILED. Runs for every path into Yoga (POST fast path and yoga.fetch).
 */
export const refuseOverDeepDocuments: Plugin = {
  onParams({ params, setResult }) {
    if (typeof params.query === 'string' && documentNestingExceeds(params.query, MAX_DOCUMENT_NESTING)) {
      setResult({
        errors: [
          createGraphQLError(`Syntax Error: the document nests more than ${MAX_DOCUMENT_NESTING} levels of brackets.`, {
            extensions: { code: 'GRAPHQL_PARSE_FAILED', http: { status: 400 } },
          }),
        ],
      });
    }
  },
};
