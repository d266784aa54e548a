/**
 * The common GraphQL request (POST /graphql, a JSON object body) handed to Yoga without the fetch
 * adapter: no WHATWG Request/Response, no web streams (measured with `npm run bench`: `{ __typename }`
 * went from about 380 to 150 µs of CPU per request). It runs the same Yoga/envelop
 * pipeline (params checks, parse/validate with armor and the caches, context, execute, masking,
 * result processors) on a small request view, so what the caller sees is the same.
 *
 * Anything unusual (another method or content type, a query string, a body that is not a plain
 * JSON object, parameters Yoga would refuse) is not handled here: the caller sends it through
 * yoga.fetch as before, and Yoga answers it with its own errors.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { ExecutionResult } from 'graphql';
import type { GraphQLParams } from 'graphql-yoga';

/** What the HTTP layer writes: status, headers (hop-by-hop ones removed by the caller) and body. */
export interface GraphQLAnswer {
  status: number;
  headers: Array<[string, string]>;
  body: string | Buffer;
  /** A streamed answer (text/event-stream, multipart/mixed): written as it comes, `body` is empty. */
  stream?: ReadableStream<Uint8Array>;
}

/** A fetch Response, as Yoga's result processors make it (the ponyfill keeps a string body as is). */
export interface YogaResponse {
  status: number;
  headers: { forEach(fn: (value: string, key: string) => void): void };
  arrayBuffer(): Promise<ArrayBuffer>;
  bodyInit?: unknown;
  body?: ReadableStream<Uint8Array> | null;
}

const STREAMED = /^(text\/event-stream|multipart\/mixed)/i;

/** Reads an answer out of a Yoga Response: both paths use this, so their headers and bodies match. */
export async function answerOf(response: YogaResponse): Promise<GraphQLAnswer> {
  const headers: Array<[string, string]> = [];
  let streamed = false;
  response.headers.forEach((value, key) => {
    headers.push([key, value]);
    if (key.toLowerCase() === 'content-type' && STREAMED.test(value)) streamed = true;
  });
  if (streamed && response.body) return { status: response.status, headers, body: '', stream: response.body };
  // The ponyfill Response keeps the JSON text it was given: no stream, no copy.
  const body = typeof response.bodyInit === 'string' ? response.bodyInit : Buffer.from(await response.arrayBuffer());
  return { status: response.status, headers, body };
}

/** The parts of a fetch Request that Yoga's plugins read on this path (method, url, headers.get). */
class RequestView {
  readonly method = 'POST';
  readonly headers: { get(name: string): string | null; has(name: string): boolean };

  constructor(
    readonly url: string,
    raw: IncomingHttpHeaders,
  ) {
    this.headers = {
      get(name) {
        const v = raw[name.toLowerCase()];
        return v === undefined ? null : Array.isArray(v) ? v.join(', ') : v;
      },
      has(name) {
        return raw[name.toLowerCase()] !== undefined;
      },
    };
  }
}

const PARAM_NAMES = new Set(['query', 'variables', 'operationName', 'extensions']);
const CONTENT_LENGTH_RE = /^\d+$/;
/** Yoga's default maxRequestBodySize: above it Yoga answers 413 itself. */
const YOGA_BODY_LIMIT = 25_000_000;

const isObjectOrNull = (v: unknown) => v === undefined || v === null || (typeof v === 'object' && !Array.isArray(v));

/**
 * The request's GraphQL parameters when Yoga's POST JSON parser would accept them unchanged and its
 * params check would pass, else null (the request goes through yoga.fetch).
 */
export function fastPathParams(method: string | undefined, url: string | undefined, headers: IncomingHttpHeaders, body: Buffer | undefined): GraphQLParams | null {
  if (method !== 'POST' || url !== '/graphql' || !body || body.length === 0 || body.length > YOGA_BODY_LIMIT) return null;
  const contentType = headers['content-type'];
  // Yoga's isPOSTJsonRequest matches the media type exactly (parameters allowed); a list or
  // application/graphql+json is rare enough to leave to Yoga.
  if (contentType !== 'application/json' && !(contentType?.startsWith('application/json;') && !contentType.includes(','))) return null;
  const length = headers['content-length'];
  if (length !== undefined && !CONTENT_LENGTH_RE.test(length)) return null;
  // A body that starts with a byte order mark is left to Yoga, which answers it as invalid JSON (400).
  // RFC 8259 forbids senders to add a BOM.
  if (body[0] === 0xef) return null;
  let params: unknown;
  try {
    params = JSON.parse(body.toString('utf8'));
  } catch {
    return null;
  }
  if (typeof params !== 'object' || params === null || Array.isArray(params)) return null;
  const p = params as Record<string, unknown>;
  for (const key in p) if (p[key] != null && !PARAM_NAMES.has(key)) return null;
  if (!isObjectOrNull(p.variables) || !isObjectOrNull(p.extensions)) return null;
  // No query text: only a trusted document's hash (src/graphql/trusted-documents.ts answers every
  // other case itself, with a result, so Yoga's params check never throws here).
  if (typeof p.query !== 'string' && !(p.query == null && p.extensions != null && (p.extensions as Record<string, unknown>).persistedQuery != null)) return null;
  if (p.operationName != null && typeof p.operationName !== 'string') return null;
  return p as GraphQLParams;
}

/** Yoga's own members this path drives (public on the instance, some only private in its typings). */
interface YogaInternals {
  getResultForParams(payload: { params: GraphQLParams; request: Request }, context: object): Promise<ExecutionResult> | ExecutionResult;
  onResultProcessHooks: Array<(payload: Record<string, unknown>) => unknown>;
  fetchAPI: { Response: new (body: string | null, init: { status: number; statusText?: string; headers: Record<string, string> }) => YogaResponse };
}

type ResultProcessor = (result: unknown, fetchAPI: unknown, mediaType: string) => YogaResponse | Promise<YogaResponse>;

const isThenable = (v: unknown): v is PromiseLike<unknown> => typeof (v as PromiseLike<unknown> | null)?.then === 'function';

/**
 * Runs params through Yoga as yoga.fetch would after parsing the body (YogaServer.handle, then its
 * processResult) and returns the answer. `serverContext` is what yoga.fetch would have been given.
 */
export type FastPath = (params: GraphQLParams, url: string, headers: IncomingHttpHeaders, serverContext: object) => Promise<GraphQLAnswer>;

export function createFastPath(yoga: object): FastPath {
  // Read once: every property read through Yoga's server-adapter Proxy allocates a bound function.
  const internals = yoga as YogaInternals;
  const getResultForParams = internals.getResultForParams;
  const resultProcessHooks = internals.onResultProcessHooks;
  const fetchAPI = internals.fetchAPI;

  return async (params, url, headers, serverContext) => {
    const request = new RequestView(url, headers) as unknown as Request;
    let result: unknown = await getResultForParams({ params, request }, serverContext);
    let processor: ResultProcessor | undefined;
    let mediaType = '*/*';
    const acceptableMediaTypes: string[] = [];
    for (const hook of resultProcessHooks) {
      const done = hook({
        request,
        acceptableMediaTypes,
        result,
        setResult(next: unknown) {
          result = next;
        },
        resultProcessor: processor,
        setResultProcessor(next: ResultProcessor, nextMediaType: string) {
          processor = next;
          mediaType = nextMediaType;
        },
        serverContext,
      });
      if (isThenable(done)) await done;
    }
    const response = processor
      ? await processor(result, fetchAPI, mediaType)
      : new fetchAPI.Response(null, {
          status: 406,
          statusText: 'Not Acceptable',
          headers: { accept: acceptableMediaTypes.join('; charset=utf-8, ') },
        });
    return answerOf(response);
  };
}
