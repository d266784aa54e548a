/**
 * The cost model at work on every GraphQL request (contract, "Cost, fairness and availability"):
 * after validation and before execution the operation is priced (src/graphql/cost.ts); a worst
 * case over the limits is refused with QUERY_TOO_COSTLY (HTTP 400), otherwise the install's token
 * bucket is charged by that price (RATE_LIMITED, HTTP 429 + Retry-After, when it cannot pay).
 * After execution, a request stopped by its response budget (src/graphql/work.ts) answers
 * `data: null` with that one error. useResponsePool then bounds, process-wide, the response bytes
 * large requests may hold at once.
 */
import { sql } from 'kysely';
import { GraphQLError, type ExecutionArgs, type GraphQLSchema } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import type { Config } from '../config.js';
import { ADMISSION_UNITS, type FairPool, type InstallRateLimit } from '../http/rate-limit.js';
import { RateLimitedError, UnavailableError } from '../storage/errors.js';
import type { Caller } from '../storage/principal.js';
import type { Storage } from '../storage/storage.js';
import { byteUnits, echoedResponseBound, evaluatePlan, installRefKey, installRefsOf, overLimit, PlanCache, rateUnits, type InstallRef, type Price, type PriceEnv } from './cost.js';
import type { GraphQLContext } from './context.js';
import { queryTooCostly } from './work.js';

export interface CostPluginOptions {
  config: Config;
  storage: Storage;
  limiter: InstallRateLimit;
  /** Called for every request refused by the rate limiter (metrics). */
  onRateLimited?(): void;
}

/** Namespace quotas of the installs a query lists namespaces of, looked up before execution. */
async function namespaceBounds(refs: readonly InstallRef[], caller: Caller, storage: Storage, config: Config): Promise<Map<string, number>> {
  const p = caller.principal;
  const quotaOf = async (id: string): Promise<number> => {
    const install = await storage.loadInstall(caller, id);
    // Only the caller's own tenant is looked at: a price must not reveal another tenant's install.
    if (!install || install.tenantId !== p.tenantId) return 0;
    return storage.scopeOf(install).quota.maxNamespaces;
  };
  const bounds = new Map<string, number>();
  for (const ref of refs) {
    let bound = 0;
    if (p.kind !== 'admin') {
      // Extensions and the Runner reach only their own install (any other is FORBIDDEN); never `installs`.
      bound = ref.kind === 'tenant' ? 0 : await quotaOf(p.installId);
    } else if (ref.kind === 'id') {
      bound = ref.id ? await quotaOf(ref.id) : 0;
    } else if (ref.kind === 'tenant') {
      // `installs`: any install of the tenant, so the largest namespace quota among them.
      const row = await storage.db
        .selectFrom('ext_storage_installs')
        .select(sql<string | null>`max((quota->>'maxNamespaces')::numeric)`.as('n'))
        .where('tenant_id', '=', p.tenantId)
        .executeTakeFirst();
      const override = row?.n === null || row?.n === undefined ? 0 : Number(row.n);
      bound = Math.max(config.quotaDefaults.maxNamespaces, Number.isFinite(override) ? override : Number.MAX_SAFE_INTEGER);
    }
    bounds.set(installRefKey(ref), bound);
  }
  return bounds;
}

const NO_BOUNDS = (): number => 0;

/** Response budgets the whole process lets large requests hold at once (src/http/rate-limit.ts FairPool). */
export const BUDGETS_AT_ONCE = 2;

/**
 * A request is large when its worst case is more than half the response budget: only those ask the
 * pool, so a one-key read or a 100-record page never waits behind another install's large answers.
 */
export const largeRequest = (reservation: number, maxResponseBytes: number): boolean => reservation > maxResponseBytes / 2;

/**
 * The response pool, after graphql-jit in the plugin list (so it wraps the executor that runs): a
 * large request (largeRequest) takes its share of the process-wide pool before it runs, its install
 * waiting its turn, and gives it back when execution ends. However many installs send them, large
 * answers hold about BUDGETS_AT_ONCE x STORAGE_MAX_RESPONSE_BYTES at once, and the event loop
 * interleaves other requests with at most that many of them.
 */
export function useResponsePool(pool: FairPool, onRateLimited?: () => void): Plugin {
  return {
    async onExecute({ args, executeFn, setExecuteFn, setResultAndStopExecution }) {
      const ctx = args.contextValue as unknown as GraphQLContext;
      const amount = ctx.work?.reservation ?? 0;
      if (!ctx.work || !largeRequest(amount, ctx.config.cost.maxResponseBytes)) return;
      const p = ctx.caller.principal;
      let release: () => void;
      try {
        const granted = pool.acquire(p.kind === 'admin' ? `tenant:${p.tenantId}` : p.installId, amount);
        release = typeof granted === 'function' ? granted : await granted;
      } catch (error) {
        if (!(error instanceof RateLimitedError)) throw error;
        onRateLimited?.();
        setResultAndStopExecution({ errors: [rateLimitedError(error)] });
        return;
      }
      // Released however execution ends (a result, or a throw).
      setExecuteFn(async (execArgs) => {
        try {
          return await executeFn(execArgs);
        } finally {
          release();
        }
      });
    },
  };
}

function rateLimitedError(e: RateLimitedError): GraphQLError {
  return new GraphQLError(e.message, {
    extensions: { code: e.code, retryAfterSeconds: e.retryAfterSeconds, http: { status: 429, headers: { 'retry-after': String(e.retryAfterSeconds) } } },
  });
}

/**
 * The worst-case answer of a request, as its share of the response pool: each record it reads at the
 * largest a record may be, the records a write returns as sent at most what the request carried.
 */
export function reservationOf(price: Price, recordBound: number, requestBytes: number, maxResponseBytes: number): number {
  const echoed = price.echoed ?? 0;
  const read = (price.records - echoed) * recordBound;
  // A request of unknown size echoes at most what its records may hold.
  const echoBound = Number.isFinite(requestBytes) ? echoedResponseBound(echoed, requestBytes) : Infinity;
  return Math.min(maxResponseBytes, read + Math.min(echoed * recordBound, echoBound));
}

/** The most bytes one record may hold for this caller: its install's value and metadata limits. */
async function recordBound(ctx: GraphQLContext): Promise<number> {
  const p = ctx.caller.principal;
  const defaults = ctx.config.quotaDefaults;
  if (p.kind === 'admin') return defaults.maxValueBytes + defaults.maxMetadataBytes;
  const install = await ctx.storage.loadInstall(ctx.caller, p.installId);
  const quota = install ? ctx.storage.scopeOf(install).quota : defaults;
  return quota.maxValueBytes + quota.maxMetadataBytes;
}

export function useCostLimits(opts: CostPluginOptions): Plugin {
  const { config, storage, limiter } = opts;
  const limits = config.limits;
  const caches = new WeakMap<GraphQLSchema, PlanCache>();

  /** The price beyond admission; the shared limit failing closed answers 503 UNAVAILABLE. */
  async function take(installId: string, units: number): Promise<number | GraphQLError> {
    try {
      return await limiter.take(installId, units, ADMISSION_UNITS);
    } catch (error) {
      if (!(error instanceof UnavailableError)) throw error;
      return new GraphQLError(error.message, { extensions: { code: error.code, http: { status: 503, headers: { 'retry-after': '1' } } } });
    }
  }

  function planCache(schema: GraphQLSchema): PlanCache {
    let cache = caches.get(schema);
    if (!cache) caches.set(schema, (cache = new PlanCache(schema)));
    return cache;
  }

  async function priceOf(args: ExecutionArgs, ctx: GraphQLContext): Promise<Price> {
    const plan = planCache(args.schema).planFor(args.document, args.operationName);
    const variables = (args.variableValues ?? {}) as Record<string, unknown>;
    let namespaceBound: PriceEnv['namespaceBound'] = NO_BOUNDS;
    if (plan.needsNamespaceBounds) {
      const bounds = await namespaceBounds(installRefsOf(plan, variables, limits), ctx.caller, storage, config);
      namespaceBound = (ref) => bounds.get(installRefKey(ref)) ?? 0;
    }
    return evaluatePlan(plan, variables, { limits, namespaceBound });
  }

  /**
   * Prices an operation and charges its install (admins are not rate-limited): the price, or the
   * refusal to answer (over a cost limit, rate-limited, or the shared limit failing closed).
   */
  async function charge(args: ExecutionArgs, ctx: GraphQLContext): Promise<{ price: Price; refusal?: undefined } | { refusal: GraphQLError }> {
    const price = await priceOf(args, ctx);
    const over = overLimit(price, config.cost);
    if (over) return { refusal: queryTooCostly(over.limit, over.cost, over.max) };
    const p = ctx.caller.principal;
    if (p.kind !== 'admin') {
      // The HTTP door took ADMISSION_UNITS when it let the request in; the price pays the rest.
      const wait = await take(p.installId, rateUnits(price));
      if (wait instanceof GraphQLError) return { refusal: wait };
      if (wait > 0) {
        opts.onRateLimited?.();
        return { refusal: rateLimitedError(new RateLimitedError(wait)) };
      }
    }
    return { price };
  }

  return {
    /**
     * A subscription is priced and charged once, when it starts, as one event (a page read and a
     * change's record); its events are paced by the feed (src/storage/follow.ts).
     */
    async onSubscribe({ args, setResultAndStopExecution }) {
      const charged = await charge(args, args.contextValue as unknown as GraphQLContext);
      if (charged.refusal) setResultAndStopExecution({ errors: [charged.refusal] });
    },
    async onExecute({ args, setResultAndStopExecution }) {
      const ctx = args.contextValue as unknown as GraphQLContext;
      const charged = await charge(args, ctx);
      if (charged.refusal) {
        setResultAndStopExecution({ errors: [charged.refusal] });
        return;
      }
      const { price } = charged;
      const p = ctx.caller.principal;
      ctx.work.reservation = price.records > 0 ? reservationOf(price, await recordBound(ctx), ctx.requestBytes, config.cost.maxResponseBytes) : 0;
      return {
        onExecuteDone({ setResult }) {
          // The bytes it returned are work too: charged now that they are known (src/graphql/cost.ts BYTES_PER_UNIT).
          if (p.kind !== 'admin') limiter.debit(p.installId, byteUnits(ctx.work.returnedBytes));
          // Stopped by its budget: whatever was built is dropped, the answer is the one error.
          if (ctx.work.stopped) setResult({ data: null, errors: [ctx.work.stopped] });
        },
      };
    },
  };
}
