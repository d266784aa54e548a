import DataLoader from 'dataloader';
import type { Config } from '../config.js';
import type { FeedNotifier } from '../storage/feed-notifier.js';
import type { InstallScope } from '../storage/installs.js';
import type { Caller } from '../storage/principal.js';
import type { StoredRecord } from '../storage/records.js';
import type { Storage } from '../storage/storage.js';
import { RequestWork } from './work.js';

export interface GraphQLContext {
  caller: Caller;
  storage: Storage;
  config: Config;
  /** Bytes of the request as received (POST body, or the GET URL): what a write can echo back. */
  requestBytes: number;
  /** This request's database calls and returned bytes, held to its budgets (src/graphql/work.ts). */
  work: RequestWork;
  /** One DataLoader per install and namespace: every record read of a request is batched through it. */
  recordLoader(scope: InstallScope, namespace: string): DataLoader<string, StoredRecord | null>;
  /** Subscriptions: wake-ups of the change feed, and the server's shutdown (ends every stream). */
  feed?: FeedContext;
}

export interface FeedContext {
  notifier: FeedNotifier;
  shutdown: AbortSignal;
}

export function createGraphQLContext(caller: Caller, storage: Storage, config: Config, requestBytes: number, feed?: FeedContext): GraphQLContext {
  const loaders = new Map<string, DataLoader<string, StoredRecord | null>>();
  caller.installs ??= new Map();
  const work = new RequestWork({ maxResponseBytes: config.cost.maxResponseBytes, maxStatements: config.cost.maxStatements });
  return {
    caller,
    storage,
    config,
    requestBytes,
    work,
    feed,
    recordLoader(scope, namespace) {
      const id = `${scope.installId}/${namespace}`;
      let loader = loaders.get(id);
      if (!loader) {
        loader = new DataLoader(
          async (keys) => {
            const found = await work.read(() => storage.readRecords(scope, namespace, keys));
            return keys.map((k) => found.get(k) ?? null);
          },
          { maxBatchSize: Math.max(storage.settings.limits.maxKeysPerRead, 100) },
        );
        loaders.set(id, loader);
      }
      return loader;
    },
  };
}
