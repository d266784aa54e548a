import type { ServerResponse } from 'node:http';
import type { ExecutionResult } from 'graphql';
import { isAsyncIterable, mapAsyncIterator, processRegularResult, type Plugin } from 'graphql-yoga';
import Negotiator from 'negotiator';
import type { StorageErrorCode } from '../storage/errors.js';
import { stringifyJson } from '../storage/json-text.js';

/**
 * HTTP status and error code of each storage error on the JSON doors (the Runner's REST protocol,
 * the admin export and import): one table for both.
 */
export const STORAGE_ERROR_HTTP: Record<StorageErrorCode, [number, string]> = {
  VALIDATION_FAILED: [400, 'VALIDATION_FAILED'],
  LIMIT_EXCEEDED: [400, 'LIMIT_EXCEEDED'],
  QUOTA_EXCEEDED: [429, 'QUOTA_EXCEEDED'],
  REVISION_MISMATCH: [409, 'REVISION_MISMATCH'],
  NOT_FOUND: [404, 'NOT_FOUND'],
  UNAUTHENTICATED: [401, 'UNAUTHORIZED'],
  FORBIDDEN: [403, 'FORBIDDEN'],
  RATE_LIMITED: [429, 'RATE_LIMITED'],
  CURSOR_EXPIRED: [410, 'CURSOR_EXPIRED'],
  INTERNAL: [500, 'INTERNAL_ERROR'],
};

/** A JSON answer; records read from storage go out as their stored text (stringifyJson). */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = stringifyJson(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

const GRAPHQL_RESPONSE_JSON = 'application/graphql-response+json';
const JSON_TYPE = 'application/json';

type GraphQLMediaType = typeof JSON_TYPE | typeof GRAPHQL_RESPONSE_JSON;

/** Only the first ranges of an Accept header are negotiated, and only those within its first characters. */
const MAX_ACCEPT_RANGES = 32;
const MAX_ACCEPT_CHARS = 512;

/**
 * The ranges of `accept` that are negotiated. negotiator's work grows with the number of ranges
 * (about 2 µs each: 16 KiB of `a/b,` cost 7 ms, for a request any caller can send without a
 * credential); a real header has a handful. A cut inside a quoted parameter only spoils the last range.
 */
function boundedAccept(accept: string): string {
  let end = Math.min(accept.length, MAX_ACCEPT_CHARS);
  let comma = -1;
  for (let ranges = 0; ranges < MAX_ACCEPT_RANGES; ranges++) {
    comma = accept.indexOf(',', comma + 1);
    if (comma < 0 || comma >= end) return accept.length <= end ? accept : accept.slice(0, Math.max(0, accept.lastIndexOf(',', end)));
  }
  end = Math.min(end, comma);
  return accept.slice(0, end);
}

/** Accept headers already decided (bounded: see graphqlMediaType). */
const decided = new Map<string, GraphQLMediaType | null>();

/**
 * What a GraphQL answer can be, in the order a tie is broken (a wildcard range or no Accept:
 * application/json, as Yoga answers). The charset parameter makes a range asking for another
 * charset not match: only UTF-8 is ever sent, as Yoga does.
 */
const GRAPHQL_TYPES = [`${JSON_TYPE}; charset=utf-8`, `${GRAPHQL_RESPONSE_JSON}; charset=utf-8`] as const;

/**
 * The media type of a GraphQL JSON answer for this Accept header (contract, "Errors and content
 * types"), decided by `negotiator`: the acceptable one with the highest q; on a tie the more
 * specific range, then the one listed first, then application/json. Null when neither is
 * acceptable (only text/event-stream, text/html, q=0, …).
 *
 * Executed requests use it too (useGraphQLMediaType), so a refusal and an answer agree.
 */
export function graphqlMediaType(accept: string | null | undefined): GraphQLMediaType | null {
  if (accept === null || accept === undefined) return JSON_TYPE;
  const known = decided.get(accept);
  if (known !== undefined) return known;
  const head = boundedAccept(accept);
  let best: string | undefined;
  try {
    best = new Negotiator({ headers: { accept: head } }).mediaType(GRAPHQL_TYPES);
  } catch {
    // A header the parser cannot read at all: as if it asked for nothing we have.
    best = undefined;
  }
  const type = best === GRAPHQL_TYPES[1] ? GRAPHQL_RESPONSE_JSON : best === GRAPHQL_TYPES[0] ? JSON_TYPE : null;
  // Clients send the same few headers: remembered, bounded (a flood of distinct ones just clears it).
  if (head === accept) {
    if (decided.size >= 64) decided.clear();
    decided.set(accept, type);
  }
  return type;
}

/**
 * The media type of a refusal before execution: the one a GraphQL answer would have, and
 * application/json when nothing GraphQL can answer is acceptable (a refusal must still be readable).
 */
export function refusalMediaType(accept: string | undefined): GraphQLMediaType {
  return graphqlMediaType(accept) ?? JSON_TYPE;
}

/** The statuses of the contract's refusals before execution ("Errors and content types"). */
const REFUSAL_STATUSES = new Set([401, 403, 405, 413, 415, 429, 503]);

/** A result that is a refusal before execution raised inside Yoga (the priced 429, a 503): no data, an error with such a status. */
function isRefusal(result: unknown): boolean {
  if (typeof result !== 'object' || result === null || Symbol.asyncIterator in result) return false;
  const { data, errors } = result as { data?: unknown; errors?: ReadonlyArray<{ extensions?: { http?: { status?: unknown } } }> };
  return data == null && Array.isArray(errors) && errors.some((e) => REFUSAL_STATUSES.has(e?.extensions?.http?.status as number));
}

/**
 * Yoga plugin: a regular (non-streamed) GraphQL answer takes the media type graphqlMediaType
 * chooses. Yoga's own choice ignores q-values (the first listed range wins), so
 * `application/graphql-response+json;q=0.5, application/json;q=0.9` was answered
 * application/graphql-response+json while its refusals were application/json. A refusal raised
 * inside Yoga (the priced 429) is answered like the ones before it, as JSON even when only
 * text/event-stream is accepted. Other streams (SSE, multipart) are left as Yoga decides, and so
 * is a 406 when neither JSON type is acceptable either.
 */
export const useGraphQLMediaType: Plugin = {
  onResultProcess({ request, result, resultProcessor, setResultProcessor }) {
    const accept = request.headers.get('accept') ?? undefined;
    if (!resultProcessor) {
      // Yoga found nothing acceptable, but a range it cannot read is (`charset="UTF-8"`, quoted): answer it, not 406.
      const mediaType = graphqlMediaType(accept);
      if (mediaType && !(typeof result === 'object' && result !== null && Symbol.asyncIterator in result)) setResultProcessor(processRegularResult, mediaType);
      return;
    }
    if (resultProcessor !== processRegularResult && !isRefusal(result)) return;
    // Where no JSON type is acceptable (`application/json;q=0, text/event-stream`) but Yoga chose
    // JSON anyway, or for a refusal: application/json, as for the refusals before Yoga.
    setResultProcessor(processRegularResult, refusalMediaType(accept));
  },
};

const withStoredJson = (result: ExecutionResult) => ({ ...result, stringify: stringifyJson });

/**
 * Yoga plugin: GraphQL answers are written by stringifyJson, so stored values read as JsonText go
 * out as their text, unparsed (src/storage/json-text.ts). Every result processor of Yoga (JSON,
 * SSE events, multipart parts) writes a result with its own `stringify` when it has one, after
 * taking Yoga's internal fields out of its errors (jsonStringifyResultWithoutInternals).
 */
export const useStoredJson: Plugin = {
  onResultProcess({ result, setResult }) {
    if (isAsyncIterable(result)) setResult(mapAsyncIterator(result, withStoredJson));
    else if (Array.isArray(result)) setResult(result.map(withStoredJson));
    else setResult(withStoredJson(result));
  },
};

/**
 * A GraphQL-shaped error response for requests refused before execution, in the media type the
 * request's Accept header would give a GraphQL response (read from `res.req`, so every refusal
 * agrees).
 */
export function sendGraphQLError(
  res: ServerResponse,
  status: number,
  code: string,
  message: string,
  headers: Record<string, string> = {},
  extra: Record<string, unknown> = {},
): void {
  const accept = res.req?.headers.accept;
  const text = JSON.stringify({ errors: [{ message, extensions: { code, ...extra } }] });
  const vary = headers.vary ? `${headers.vary}, Accept` : 'Accept';
  res.writeHead(status, {
    'content-type': `${refusalMediaType(accept)}; charset=utf-8`,
    'content-length': String(Buffer.byteLength(text)),
    ...headers,
    vary,
  });
  res.end(text);
}
