/**
 * Ready configuration for normalized GraphQL caches: Apollo Client's InMemoryCache and urql's
 * Graphcache. Plain objects and functions only: nothing here imports Apollo or urql, so the typed
 * client still needs neither at run time. The library helpers (`relayStylePagination`,
 * `relayPagination`) are passed in by the app, which already depends on its cache library.
 *
 * - `possibleTypes`: the concrete types of every interface and union (generated from the schema by
 *   `npm run codegen`). Without it, `... on StorageError { code message }` and
 *   `... on Node { id }` never match and their fields are silently dropped.
 * - Records are normalized by their global `id` (Relay global object identification), so a
 *   put's answer updates every cached read of the same record in place.
 */
import graphcacheSchema from './generated/graphcache-schema.js';
import generated from './generated/possible-types.js';

/** Interface or union name → the names of its object types. */
// (A pure call, so that bundlers drop it from apps that do not use it.)
export const possibleTypes: Readonly<Record<string, string[]>> = /* @__PURE__ */ (() => generated.possibleTypes)();

/** Object types without an `id`: caches keep them inside their parent (no key of their own). */
export const embeddedTypes = [
  'AuditEventConnection',
  'AuditEventEdge',
  'BulkPutRecordsSuccess',
  'Change',
  'ChangeConnection',
  'ChangeEdge',
  'CheckConflict',
  'CommitConflict',
  'CommitSuccess',
  'DeleteRecordSuccess',
  'InstallConnection',
  'InstallEdge',
  'LimitExceeded',
  'NamespaceSchema',
  'PageInfo',
  'PutRecordSuccess',
  'Quota',
  'QuotaExceeded',
  'RecordConnection',
  'RecordEdge',
  'RevisionMismatch',
  'SetNamespaceSchemaSuccess',
  'StorageCapabilities',
  'Usage',
  'ValidationFailed',
  'ValidationIssue',
] as const;

// ------------------------------------------------------------------ Apollo Client

/** The part of Apollo's FieldFunctionOptions that the read functions below use. */
interface ApolloReadOptions {
  args: Record<string, unknown> | null;
  toReference(object: { __typename: string; id: string }): unknown;
  canRead(value: unknown): boolean;
}

/** A reference whose entity was evicted (a deleted record) reads as null, as the server would answer. */
function liveOrNull(existing: unknown, { canRead }: ApolloReadOptions): unknown {
  return existing && !canRead(existing) ? null : existing;
}

/**
 * `typePolicies` for Apollo's InMemoryCache:
 *
 * ```ts
 * import { InMemoryCache } from '@apollo/client';
 * import { relayStylePagination } from '@apollo/client/utilities';
 * new InMemoryCache({ possibleTypes, typePolicies: apolloTypePolicies({ relayStylePagination }) });
 * ```
 *
 * - `recordList` (on Query and Namespace), `installs` and `auditLog`: one cached list per
 *   namespace/prefix/installId; pages fetched with `after` (fetchMore) are appended in order,
 *   without duplicates, and `pageInfo` is the last page's.
 * - `node(id)`: answered from the cache when the Record, Namespace or Install with that id is
 *   there (fetched once by any field), without a request.
 * - `record`, `node`, `records`: a record evicted after a delete reads as null; edges of an
 *   evicted record leave `recordList`.
 */
export function apolloTypePolicies<P>(helpers: { relayStylePagination: (keyArgs: string[]) => P }) {
  const { relayStylePagination } = helpers;
  return {
    Query: {
      fields: {
        recordList: relayStylePagination(['installId', 'namespace', 'prefix']),
        installs: relayStylePagination([]),
        record: { read: liveOrNull },
        records: {
          read(existing: readonly unknown[] | undefined, options: ApolloReadOptions) {
            return existing?.map((r) => liveOrNull(r, options));
          },
        },
        node: {
          read(existing: unknown, options: ApolloReadOptions) {
            if (existing !== undefined) return liveOrNull(existing, options);
            const id = options.args?.id;
            if (typeof id !== 'string') return undefined;
            for (const __typename of possibleTypes.Node ?? []) {
              const ref = options.toReference({ __typename, id });
              if (ref && options.canRead(ref)) return ref;
            }
            return undefined;
          },
        },
      },
    },
    Namespace: {
      fields: {
        recordList: relayStylePagination(['prefix']),
        record: { read: liveOrNull },
      },
    },
    Install: {
      fields: {
        auditLog: relayStylePagination([]),
      },
    },
  };
}

// ------------------------------------------------------------------ urql Graphcache

/** The part of Graphcache's Cache that the updater below uses. */
export interface GraphcacheLike {
  inspectFields(entity: string): Array<{ fieldKey: string; fieldName: string; arguments: Record<string, unknown> | null }>;
  resolve(entity: unknown, fieldName: string, args?: Record<string, unknown> | null): unknown;
  invalidate(entity: string, fieldName?: string, args?: Record<string, unknown> | null): void;
  link(entity: string, fieldName: string, link: unknown): void;
}

/** Graphcache's resolver info, as far as the node resolver uses it. */
interface GraphcacheInfo {
  parentKey: string;
  fieldName: string;
}

/**
 * Removes a deleted record from a Graphcache: the record itself, `record(namespace, key)` and
 * `node(id)` reads of it (now null), its place in `records` lists (null) and its edge in cached
 * `recordList` pages. `graphcacheOptions` calls it after each successful deleteRecord; call it
 * yourself after a delete made without the cache (for example through `createStorageClient`).
 */
export function removeRecordFromGraphcache(cache: GraphcacheLike, target: { namespace: string; key: string; installId?: string | null }): void {
  const sameInstall = (args: Record<string, unknown>) => !target.installId || !args.installId || args.installId === target.installId;
  const isTarget = (entity: unknown) => typeof entity === 'string' && cache.resolve(entity, 'namespace') === target.namespace && cache.resolve(entity, 'key') === target.key;
  const gone = new Set<string>();
  for (const field of cache.inspectFields('Query')) {
    const args = field.arguments ?? {};
    const linked = cache.resolve('Query', field.fieldKey);
    if (field.fieldName === 'recordList' && args.namespace === target.namespace && sameInstall(args) && typeof linked === 'string') {
      const edges = cache.resolve(linked, 'edges');
      if (!Array.isArray(edges)) continue;
      const kept = edges.filter((edge) => {
        const node = cache.resolve(edge, 'node');
        if (!isTarget(node)) return true;
        gone.add(node as string);
        return false;
      });
      if (kept.length !== edges.length) cache.link(linked, 'edges', kept);
    } else if ((field.fieldName === 'record' || field.fieldName === 'node') && isTarget(linked) && sameInstall(args)) {
      gone.add(linked as string);
      cache.link('Query', field.fieldKey, null);
    } else if (field.fieldName === 'records' && Array.isArray(linked) && linked.some(isTarget)) {
      for (const entity of linked) if (isTarget(entity)) gone.add(entity as string);
      cache.link('Query', field.fieldKey, linked.map((entity) => (isTarget(entity) ? null : entity)));
    }
  }
  for (const entity of gone) cache.invalidate(entity);
}

/**
 * Options for urql's Graphcache `cacheExchange`:
 *
 * ```ts
 * import { cacheExchange } from '@urql/exchange-graphcache';
 * import { relayPagination } from '@urql/exchange-graphcache/extras';
 * cacheExchange(graphcacheOptions({ relayPagination }));
 * ```
 *
 * - `schema`: the schema's shape (generated), so fragments on interfaces and unions match exactly,
 *   on reads and on writes; `keys` embed every type without an id.
 * - `recordList` (on Query and Namespace), `installs` and `auditLog`: pages queried with `after`
 *   read as one list in order, without duplicates, with the last page's `pageInfo`.
 * - `node(id)` is answered from the cache when the entity with that id is there.
 * - After a successful `deleteRecord` the record leaves the cache (`removeRecordFromGraphcache`).
 *
 * A put of a new key does not add it to cached lists: query the list again (`requestPolicy:
 * 'network-only'`) when it should show new records.
 */
export function graphcacheOptions<R>(helpers: { relayPagination: () => R }) {
  const { relayPagination } = helpers;
  const keys: Record<string, () => null> = Object.fromEntries(embeddedTypes.map((type) => [type, () => null]));
  return {
    schema: graphcacheSchema,
    keys,
    resolvers: {
      Query: {
        recordList: relayPagination(),
        installs: relayPagination(),
        node(_parent: unknown, args: Record<string, unknown>, cache: GraphcacheLike, info: GraphcacheInfo): { __typename: string; id: string } | string | null | undefined {
          const id = args.id;
          if (typeof id === 'string') {
            for (const __typename of possibleTypes.Node ?? []) {
              const entity = { __typename, id };
              if (cache.resolve(entity, 'id') === id) return entity;
            }
          }
          return cache.resolve(info.parentKey, info.fieldName, args) as string | null | undefined;
        },
      },
      Namespace: { recordList: relayPagination() },
      Install: { auditLog: relayPagination() },
    },
    updates: {
      Mutation: {
        deleteRecord(result: Record<string, unknown>, args: Record<string, unknown>, cache: GraphcacheLike) {
          const payload = result.deleteRecord as { __typename?: string } | null | undefined;
          const input = args.input as { namespace: string; key: string; installId?: string | null } | undefined;
          if (payload?.__typename === 'DeleteRecordSuccess' && input) removeRecordFromGraphcache(cache, input);
        },
      },
    },
  };
}
