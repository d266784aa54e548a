/**
 * Queries run by graphql-jit: a document is compiled once into plain JavaScript, so a 100-record
 * answer no longer pays graphql-js's per-field bookkeeping (info objects, path lists, completeValue
 * dispatch), about 4/5 of its execution CPU. Mutations run compiled too (jit runs their root fields
 * one after the other, as graphql-js does): a 100-item bulk put no longer pays the regular
 * executor's variable snapshot and coercion (a copy of every item and input object, then a second
 * walk) nor its result completion. Introspection, and anything jit cannot compile, keeps the
 * regular executor.
 *
 * What callers see stays the regular executor's: a variable error (no data) is answered by
 * re-running the regular executor, which reports it in its own words (no resolver has run yet),
 * and jit's field errors are rebuilt as ordinary located GraphQLErrors, so masking, codes and
 * `locations` come out as before.
 */
import {
  getOperationAST,
  GraphQLError,
  type DocumentNode,
  type ExecutionArgs,
  type ExecutionResult,
  type OperationDefinitionNode,
  type Source,
  type SourceLocation,
} from 'graphql';
import { compileQuery, isCompiledQuery, type CompiledQuery } from 'graphql-jit';
import type { Plugin } from 'graphql-yoga';

/** Executions of a document before it is compiled: a one-off query is not worth a compilation (~ms). */
const COMPILE_AFTER = 2;

interface Plan {
  runs: number;
  compiled?: CompiledQuery | null;
}

/** The operation when it is one jit may run: a query or mutation, no introspection (GraphiQL's, rare, left as it was). */
function jitOperation(document: DocumentNode, operationName: string | null | undefined): OperationDefinitionNode | null {
  const op = getOperationAST(document, operationName);
  if (!op || (op.operation !== 'query' && op.operation !== 'mutation')) return null;
  for (const s of op.selectionSet.selections) {
    if (s.kind !== 'Field' || s.name.value === '__schema' || s.name.value === '__type') return null;
  }
  return op;
}

const lineStarts = new WeakMap<Source, number[]>();

/** Offsets of the start of each line of a source, as graphql's getLocation counts lines. */
function startsOf(source: Source): number[] {
  let starts = lineStarts.get(source);
  if (!starts) {
    starts = [0];
    for (const m of source.body.matchAll(/\r\n|[\n\r]/g)) starts.push(m.index + m[0].length);
    lineStarts.set(source, starts);
  }
  return starts;
}

/** A jit error (locations, path, originalError, no nodes) as the GraphQLError graphql-js would have made. */
function located(error: GraphQLError, source: Source | undefined): GraphQLError {
  const locations = error.locations as readonly SourceLocation[] | undefined;
  const starts = source ? startsOf(source) : [];
  const positions = source && locations?.length ? locations.map((l) => (starts[l.line - 1] ?? 0) + l.column - 1) : undefined;
  const original = error.originalError;
  // graphql-js keeps a located GraphQLError a resolver threw as it is (locatedError).
  if (original instanceof GraphQLError && Array.isArray(original.path)) return original;
  return new GraphQLError(error.message, {
    source: positions ? source : undefined,
    positions,
    path: error.path,
    originalError: original ?? undefined,
  });
}

export function useJitQueries(): Plugin {
  const plans = new WeakMap<DocumentNode, Map<string, Plan>>();

  function planFor(args: ExecutionArgs): Plan {
    let byName = plans.get(args.document);
    if (!byName) plans.set(args.document, (byName = new Map()));
    const name = args.operationName ?? '';
    let plan = byName.get(name);
    if (!plan) byName.set(name, (plan = { runs: 0 }));
    return plan;
  }

  function compiledFor(args: ExecutionArgs): CompiledQuery | null {
    const plan = planFor(args);
    if (plan.compiled !== undefined) return plan.compiled;
    if (++plan.runs < COMPILE_AFTER) return null;
    plan.compiled = null;
    if (jitOperation(args.document, args.operationName)) {
      const compiled = compileQuery(args.schema, args.document, args.operationName ?? undefined);
      if (isCompiledQuery(compiled)) plan.compiled = compiled;
    }
    return plan.compiled;
  }

  return {
    onExecute({ args, executeFn, setExecuteFn }) {
      const compiled = compiledFor(args);
      if (!compiled) return;
      setExecuteFn(async (execArgs: ExecutionArgs) => {
        const result = (await compiled.query(execArgs.rootValue, execArgs.contextValue, execArgs.variableValues ?? {})) as ExecutionResult;
        if (!result.errors) return result;
        // No data: the variables were refused before anything ran; the regular executor words that.
        if (!('data' in result)) return executeFn(execArgs);
        const source = execArgs.document.loc?.source;
        return { ...result, errors: result.errors.map((e) => located(e, source)) };
      });
    },
  };
}
