/**
 * GraphiQL for admins: served offline (no CDN), with example operations and, in dev mode, a token.
 * The page is a static asset: rendered and compressed once, served with validators, rate limited.
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { promisify } from 'node:util';
import { brotliCompress, constants as zlibConstants, gzip } from 'node:zlib';
import { renderGraphiQL } from '@graphql-yoga/render-graphiql';
import type { GraphiQLOptions } from 'graphql-yoga';
import { sendGraphQLError } from './respond.js';

export interface GraphiQLDemo {
  token: string;
  installId: string;
}

export function exampleOperations(installId: string): Array<{ name: string; query: string; variables: string }> {
  const vars = (o: object) => JSON.stringify(o, null, 2);
  return [
    {
      name: 'read',
      query: `# Read one record and several at once (null where a key is missing).
query ReadRecords($installId: ID!) {
  record(installId: $installId, namespace: "settings", key: "theme") { key value revision updatedAt }
  records(installId: $installId, namespace: "settings", keys: ["theme", "missing"]) { key value revision }
}`,
      variables: vars({ installId }),
    },
    {
      name: 'write',
      query: `# Create or replace a record; ifRevision makes it conditional (0 = create only).
mutation WriteRecord($installId: ID!) {
  putRecord(input: { installId: $installId, namespace: "settings", key: "theme", value: { mode: "dark" } }) {
    __typename
    ... on PutRecordSuccess { record { key revision value } }
    ... on RevisionMismatch { currentRevision }
    ... on StorageError { code message }
  }
}`,
      variables: vars({ installId }),
    },
    {
      name: 'commit',
      query: `# Checks, then puts, deletes and increments across namespaces of one install: all or nothing.
# A failed check writes nothing and answers CommitConflict (run this twice: "todo" exists then).
# dryRun: true decides everything and writes nothing.
mutation Commit($installId: ID!, $checks: [CommitCheck!], $operations: [CommitOperation!]!, $dryRun: Boolean) {
  commit(input: { installId: $installId, checks: $checks, operations: $operations, dryRun: $dryRun }) {
    __typename
    ... on CommitSuccess { committed records { namespace key value revision } }
    ... on CommitConflict { conflicts { index namespace key expectedRevision currentRevision } }
    ... on LimitExceeded { limit itemIndex }
    ... on StorageError { code message }
  }
}`,
      variables: vars({
        installId,
        checks: [{ namespace: 'boards', key: 'todo', revision: 0 }],
        operations: [
          { put: { namespace: 'boards', key: 'todo', value: { cards: ['write docs'] } } },
          { delete: { namespace: 'boards', key: 'draft' } },
          { increment: { namespace: 'stats', key: 'boards', by: 1 } },
        ],
        dryRun: false,
      }),
    },
    {
      name: 'list',
      query: `# Page through a namespace by key; pass pageInfo.endCursor as "after" for the next page.
query ListRecords($installId: ID!, $after: String) {
  recordList(installId: $installId, namespace: "settings", first: 10, after: $after) {
    edges { cursor node { key revision } }
    pageInfo { hasNextPage endCursor }
  }
}`,
      variables: vars({ installId, after: null }),
    },
    {
      name: 'usage',
      query: `# Usage against quota, per namespace too.
query Usage($installId: ID!) {
  install(id: $installId) {
    extensionId enabled
    usage { namespaces keys bytes }
    quota { maxNamespaces maxKeysPerNamespace maxBytes }
    namespaces { name keyCount bytesUsed }
  }
}`,
      variables: vars({ installId }),
    },
    {
      name: 'watch',
      query: `# Follow the install's changes live (Server-Sent Events): put a record in another tab and
# watch it arrive. Pass a cursor as "after" to first replay what came after it.
subscription Watch($installId: ID, $after: String) {
  changes(installId: $installId, after: $after) {
    cursor at operation namespace key revision actor
    record { value }
  }
}`,
      variables: vars({ installId, after: null }),
    },
    {
      name: 'schema',
      query: `# Set a JSON Schema (draft 2020-12) for a namespace; writes are validated against it.
mutation SetSchema($installId: ID!) {
  setNamespaceSchema(input: {
    installId: $installId, namespace: "settings",
    schema: { type: "object", properties: { mode: { enum: ["dark", "light"] } } }
  }) {
    __typename
    ... on SetNamespaceSchemaSuccess { schema { version } }
    ... on ValidationFailed { issues { path message } }
  }
}`,
      variables: vars({ installId }),
    },
  ];
}

/** Yoga's GraphiQL page also reads `variables` (the variables editor's start), which its type omits. */
export type GatewayGraphiQLOptions = GraphiQLOptions & { variables?: string };

export function graphiqlOptions(demo?: GraphiQLDemo): GatewayGraphiQLOptions {
  const installId = demo?.installId ?? '00000000-0000-0000-0000-000000000000';
  const headers = JSON.stringify(demo ? { Authorization: `Bearer ${demo.token}` } : { Authorization: 'Bearer <admin token>' }, null, 2);
  const tabs = exampleOperations(installId).map((op) => ({ query: op.query, variables: op.variables, headers }));
  return {
    title: 'Extension storage gateway',
    defaultQuery: tabs[0]!.query,
    defaultTabs: tabs,
    headers,
    defaultHeaders: headers,
    // The editors start from these, not from the active tab: without them the first tab's
    // variables stayed empty and its query failed ("$installId was not provided").
    variables: tabs[0]!.variables,
    shouldPersistHeaders: false,
    // Subscriptions as GraphQL over SSE (POST, Accept: text/event-stream), the gateway's only
    // streaming protocol; the page bundles the client for it (no CDN).
    subscriptionsProtocol: 'SSE',
  };
}

/**
 * GraphiQL is decided here only: a GET of exactly `/graphql` (no query string, no fragment, nothing
 * encoded) from a client that accepts HTML. Anything else is a GraphQL request and needs a
 * credential; nothing parses the URL differently from Yoga, because nothing parses it at all.
 */
export function isGraphiQLPageRequest(req: IncomingMessage): boolean {
  return req.method === 'GET' && req.url === '/graphql' && (req.headers.accept ?? '').toLowerCase().includes('text/html');
}

/** A token bucket: `take()` answers 0 when allowed, else the seconds to wait. */
class Bucket {
  private tokens: number;
  private at: number;

  constructor(
    private readonly perSecond: number,
    private readonly burst: number,
    now: number,
  ) {
    this.tokens = burst;
    this.at = now;
  }

  take(now: number): number {
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.at) / 1000) * this.perSecond);
    this.at = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - this.tokens) / this.perSecond));
  }

  full(now: number): boolean {
    return this.tokens + ((now - this.at) / 1000) * this.perSecond >= this.burst;
  }
}

interface Representation {
  body: Buffer;
  etag: string;
  encoding: 'br' | 'gzip' | null;
}

interface Built {
  identity: Representation;
  gzip: Representation;
  br: Representation;
  lastModified: string;
  /** Second precision, as Last-Modified and If-Modified-Since say it. */
  lastModifiedMs: number;
  /** Every ETag this page has had in any encoding (If-None-Match may name any of them). */
  tags: Set<string>;
}

const PER_ADDRESS_MAX = 10_000;

/** The codings of Accept-Encoding with q > 0 (lower case). */
function acceptedEncodings(header: string | undefined): Set<string> {
  const out = new Set<string>();
  for (const part of (header ?? '').split(',').slice(0, 32)) {
    const [coding = '', ...params] = part.split(';').map((p) => p.trim().toLowerCase());
    const q = params.find((p) => p.startsWith('q='));
    if (coding && (q === undefined || Number(q.slice(2)) > 0)) out.add(coding);
  }
  return out;
}

export interface GraphiQLPage {
  /** Answers a request isGraphiQLPageRequest accepted: 200, 304 or 429. */
  serve(req: IncomingMessage, res: ServerResponse, headers: Record<string, string>): Promise<void>;
}

/**
 * The page, built at its first request (9 MB of HTML: 25 ms to render, gzip and brotli computed
 * once off the event loop), then served from memory: with an ETag and Last-Modified (304 when the
 * browser has it), precompressed, and rate limited per client address and in total (10x), so the
 * unauthenticated page cannot cost the service more than a few buffered writes.
 */
export function createGraphiQLPage(options: GatewayGraphiQLOptions, rate: { perSecond: number; burst: number }, now: () => number = () => performance.now()): GraphiQLPage {
  let built: Promise<Built> | undefined;
  const perAddress = new Map<string, Bucket>();
  const global = rate.perSecond > 0 ? new Bucket(rate.perSecond * 10, Math.max(1, rate.burst) * 10, now()) : null;

  async function build(): Promise<Built> {
    const html = Buffer.from(renderGraphiQL(options), 'utf8');
    const hash = createHash('sha256').update(html).digest('base64url').slice(0, 22);
    // Compression levels chosen for a one-off cost below a second (brotli 11 takes 24 s on this page).
    const [gz, br] = await Promise.all([
      promisify(gzip)(html, { level: 6 }),
      promisify(brotliCompress)(html, { params: { [zlibConstants.BROTLI_PARAM_QUALITY]: 5, [zlibConstants.BROTLI_PARAM_SIZE_HINT]: html.length } }),
    ]);
    const lastModifiedMs = Math.floor(Date.now() / 1000) * 1000;
    const identity: Representation = { body: html, etag: `"${hash}"`, encoding: null };
    const gzipped: Representation = { body: gz, etag: `"${hash}-gzip"`, encoding: 'gzip' };
    const brotli: Representation = { body: br, etag: `"${hash}-br"`, encoding: 'br' };
    return {
      identity,
      gzip: gzipped,
      br: brotli,
      lastModified: new Date(lastModifiedMs).toUTCString(),
      lastModifiedMs,
      tags: new Set([identity.etag, gzipped.etag, brotli.etag]),
    };
  }

  function rateLimited(req: IncomingMessage): number {
    if (!global) return 0;
    const t = now();
    const address = req.socket.remoteAddress ?? 'unknown';
    let bucket = perAddress.get(address);
    if (!bucket) {
      if (perAddress.size >= PER_ADDRESS_MAX) {
        for (const [a, b] of perAddress) if (b.full(t)) perAddress.delete(a);
        // Still full of busy addresses: forget the oldest rather than grow without bound.
        if (perAddress.size >= PER_ADDRESS_MAX) perAddress.delete(perAddress.keys().next().value!);
      }
      bucket = new Bucket(rate.perSecond, Math.max(1, rate.burst), t);
      perAddress.set(address, bucket);
    }
    return bucket.take(t) || global.take(t);
  }

  return {
    async serve(req, res, headers) {
      const wait = rateLimited(req);
      if (wait > 0) {
        sendGraphQLError(res, 429, 'RATE_LIMITED', 'too many requests for the GraphiQL page; retry later', { ...headers, 'retry-after': String(wait) }, { retryAfterSeconds: wait });
        return;
      }
      built ??= build().catch((error: unknown) => {
        built = undefined;
        throw error;
      });
      const page = await built;
      const encodings = acceptedEncodings(req.headers['accept-encoding']);
      const chosen = encodings.has('br') ? page.br : encodings.has('gzip') || encodings.has('x-gzip') ? page.gzip : page.identity;
      const common: Record<string, string> = {
        ...headers,
        etag: chosen.etag,
        'last-modified': page.lastModified,
        // Cached by the browser, revalidated each time (a dev-mode page carries a token that changes at restart).
        'cache-control': 'private, no-cache',
        vary: headers.vary ? `${headers.vary}, Accept, Accept-Encoding` : 'Accept, Accept-Encoding',
        'x-content-type-options': 'nosniff',
        // The page may hold an admin token: no other site may frame it.
        'x-frame-options': 'DENY',
      };
      const ifNoneMatch = req.headers['if-none-match'];
      const ifModifiedSince = req.headers['if-modified-since'];
      const notModified =
        ifNoneMatch !== undefined
          ? ifNoneMatch.trim() === '*' || ifNoneMatch.split(',').some((tag) => page.tags.has(tag.trim().replace(/^W\//, '')))
          : ifModifiedSince !== undefined && Date.parse(ifModifiedSince) >= page.lastModifiedMs;
      if (notModified) {
        res.writeHead(304, common);
        res.end();
        return;
      }
      res.writeHead(200, {
        ...common,
        'content-type': 'text/html; charset=utf-8',
        'content-length': String(chosen.body.length),
        ...(chosen.encoding ? { 'content-encoding': chosen.encoding } : {}),
      });
      res.end(chosen.body);
    },
  };
}
