/**
 * Trusted documents (persisted operations): a caller names a known document by its SHA-256 hash
 * instead of sending its text, as Apollo's and urql's persisted-query links do:
 * `{"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "<64 hex>"}}, "variables": …}`.
 *
 * The known documents are the typed client's (client/generated/persisted-documents.json, written by
 * `npm run codegen`) plus any manifest the operator names (STORAGE_TRUSTED_DOCUMENTS_FILE, same
 * format: `{"sha256:<hex>": "<document>"}`; every hash is checked against its document at start).
 *
 * Modes (STORAGE_TRUSTED_DOCUMENTS):
 * - `allow` (default): a hash or a query text, whichever the caller sends.
 * - `require`: extension and Runner requests must name a trusted document by its hash (or send one's
 *   exact text); any other document is refused before it is parsed. Admins (GraphiQL) keep sending
 *   any query.
 *
 * Why not @graphql-yoga/plugin-persisted-operations: its arbitrary-document check sees only the
 * HTTP request, not the authenticated caller (admins must stay free), and it throws from `onParams`,
 * which the gateway's fast path (src/http/graphql-fast-path.ts) cannot turn into Yoga's error
 * answer. This plugin answers with a result instead (`setResult`), the same on both paths.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createGraphQLError, type Plugin } from 'graphql-yoga';
import clientManifest from '../../client/generated/persisted-documents.json' with { type: 'json' };
import type { Caller } from '../storage/principal.js';

export type TrustedDocumentsMode = 'allow' | 'require';

const HASH_RE = /^(?:sha256:)?([0-9a-f]{64})$/;

export const sha256Hex = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');

/** Hash (bare lowercase hex) → document text, and the texts themselves (a caller may send one in full). */
export class TrustedDocuments {
  readonly byHash = new Map<string, string>();
  readonly texts = new Set<string>();

  /** Adds a manifest `{"sha256:<hex>" | "<hex>": document}`; throws naming the first bad entry. */
  add(manifest: unknown, source: string): this {
    if (typeof manifest !== 'object' || manifest === null || Array.isArray(manifest)) {
      throw new Error(`${source}: a trusted-documents manifest is a JSON object {"sha256:<hex>": "<document>"}`);
    }
    for (const [key, document] of Object.entries(manifest)) {
      const hash = HASH_RE.exec(key)?.[1];
      if (!hash || typeof document !== 'string') throw new Error(`${source}: entry "${key.slice(0, 80)}" is not "sha256:<64 lowercase hex>": "<document>"`);
      if (sha256Hex(document) !== hash) throw new Error(`${source}: the document of ${key.slice(0, 80)} does not hash to it`);
      this.byHash.set(hash, document);
      this.texts.add(document);
    }
    return this;
  }
}

/** The typed client's documents, plus the operator's manifest files (paths), each checked. */
export function loadTrustedDocuments(files: string[]): TrustedDocuments {
  const docs = new TrustedDocuments().add(clientManifest, 'client/generated/persisted-documents.json');
  for (const file of files) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(file, 'utf8'));
    } catch (error) {
      throw new Error(`STORAGE_TRUSTED_DOCUMENTS_FILE ${file}: ${(error as Error).message}`);
    }
    docs.add(parsed, `STORAGE_TRUSTED_DOCUMENTS_FILE ${file}`);
  }
  return docs;
}

/** A request-level refusal: HTTP 400, nothing parsed or run (contract, "Errors and content types"). */
const refusal = (message: string, code: string) => ({ errors: [createGraphQLError(message, { extensions: { code, http: { status: 400 } } })] });

/** The hash a request names (`extensions.persistedQuery`, version 1), '' for a malformed one, null for none. */
function namedHash(extensions: unknown): string | null {
  const pq = (extensions as { persistedQuery?: unknown } | null | undefined)?.persistedQuery;
  if (pq === undefined || pq === null) return null;
  if (typeof pq !== 'object' || (pq as { version?: unknown }).version !== 1) return '';
  const hash = (pq as { sha256Hash?: unknown }).sha256Hash;
  return typeof hash === 'string' ? (HASH_RE.exec(hash)?.[1] ?? '') : '';
}

/**
 * The Yoga plugin: swaps a known hash for its document before Yoga's own params check, and refuses
 * what the mode does not allow. `callerOf` reads the authenticated caller from the server context.
 */
export function useTrustedDocuments<C extends Record<string, any>>(docs: TrustedDocuments, mode: TrustedDocumentsMode, callerOf: (context: C) => Caller | undefined): Plugin<C> {
  return {
    onParams({ params, setParams, setResult, context }) {
      const refuse = (message: string, code: string) => {
        setResult(refusal(message, code));
        // Yoga's params check runs after this hook: give it something valid; the result above is the answer.
        setParams({ query: '{ __typename }' });
      };
      const hash = namedHash(params.extensions);
      if (hash === '') return refuse('extensions.persistedQuery must be {"version": 1, "sha256Hash": "<64 lowercase hex>"}', 'BAD_REQUEST');
      if (hash !== null) {
        const document = docs.byHash.get(hash);
        if (document === undefined) {
          // A text sent along that hashes to the named value is an ordinary query (allowed in `allow`).
          const text = params.query;
          if (typeof text === 'string' && sha256Hex(text) === hash && mayRunAnyDocument(mode, callerOf(context as C))) {
            return;
          }
          return refuse('PersistedQueryNotFound', 'PERSISTED_QUERY_NOT_FOUND');
        }
        // Every stored document hashes to its key: a text sent along must be that document.
        if (params.query != null && params.query !== document) {
          return refuse('the query sent does not match extensions.persistedQuery.sha256Hash', 'BAD_REQUEST');
        }
        setParams({ ...params, query: document });
        return;
      }
      if (typeof params.query === 'string' && !mayRunAnyDocument(mode, callerOf(context as C)) && !docs.texts.has(params.query)) {
        return refuse('this server runs only trusted documents for extensions and the Runner: send extensions.persistedQuery with a known sha256Hash', 'PERSISTED_QUERY_REQUIRED');
      }
    },
  };
}

/** `allow`: everyone; `require`: admins only (GraphiQL and admin tools explore freely). */
function mayRunAnyDocument(mode: TrustedDocumentsMode, caller: Caller | undefined): boolean {
  return mode === 'allow' || caller?.principal.kind === 'admin';
}
