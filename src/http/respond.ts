import type { ServerResponse } from 'node:http';

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

const GRAPHQL_RESPONSE_JSON = 'application/graphql-response+json';
const JSON_TYPE = 'application/json';

interface AcceptRange {
  type: string;
  subtype: string;
  q: number;
  index: number;
}

function parseAccept(accept: string): AcceptRange[] {
  const ranges: AcceptRange[] = [];
  const parts = accept.split(',');
  // A header of thousands of ranges is the caller's problem, not ours: look at the first 64.
  for (let index = 0; index < parts.length && index < 64; index++) {
    const [range = '', ...params] = parts[index]!.split(';').map((p) => p.trim().toLowerCase());
    const slash = range.indexOf('/');
    if (slash <= 0 || slash === range.length - 1) continue;
    let q = 1;
    let usable = true;
    for (const param of params) {
      const [name, value = ''] = param.split('=').map((p) => p.trim());
      if (name === 'q') {
        q = /^(0(\.\d{0,3})?|1(\.0{0,3})?)$/.test(value) ? Number(value) : NaN;
        if (Number.isNaN(q)) usable = false;
      }
      // Only UTF-8 is ever sent (as Yoga does): a range asking for another charset does not match.
      if (name === 'charset' && value.replace(/"/g, '') !== 'utf-8') usable = false;
    }
    if (usable) ranges.push({ type: range.slice(0, slash), subtype: range.slice(slash + 1), q, index });
  }
  return ranges;
}

/** The q, specificity and position of the most specific range matching `mediaType`, or null. */
function matchOf(ranges: AcceptRange[], mediaType: string): { q: number; specificity: number; index: number } | null {
  const [type, subtype] = mediaType.split('/') as [string, string];
  let best: { q: number; specificity: number; index: number } | null = null;
  for (const r of ranges) {
    const specificity = r.type === type && r.subtype === subtype ? 3 : r.type === type && r.subtype === '*' ? 2 : r.type === '*' && r.subtype === '*' ? 1 : 0;
    if (specificity > 0 && (!best || specificity > best.specificity)) best = { q: r.q, specificity, index: r.index };
  }
  return best;
}

/**
 * The media type a GraphQL response would have for this Accept header (contract, "Errors and
 * content types"): the acceptable one with the highest q; on a tie the more specific range, then
 * the one listed first, then application/json. Nothing acceptable (only text/event-stream,
 * text/html, …) gets application/json: a refusal must still be readable.
 */
export function refusalMediaType(accept: string | undefined): string {
  if (!accept) return JSON_TYPE;
  const ranges = parseAccept(accept);
  const spec = matchOf(ranges, GRAPHQL_RESPONSE_JSON);
  const json = matchOf(ranges, JSON_TYPE);
  if (!spec || spec.q <= 0) return JSON_TYPE;
  if (!json || json.q <= 0) return GRAPHQL_RESPONSE_JSON;
  if (spec.q !== json.q) return spec.q > json.q ? GRAPHQL_RESPONSE_JSON : JSON_TYPE;
  if (spec.specificity !== json.specificity) return spec.specificity > json.specificity ? GRAPHQL_RESPONSE_JSON : JSON_TYPE;
  return spec.index < json.index ? GRAPHQL_RESPONSE_JSON : JSON_TYPE;
}

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
