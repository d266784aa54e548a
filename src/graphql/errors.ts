/** Maps core errors to GraphQL errors, once, for every field error of a response. */
import { GraphQLError } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import {
  BadInputError,
  LimitExceededError,
  RateLimitedError,
  StorageError,
  mapDatabaseError,
} from '../storage/errors.js';

export function storageErrorExtensions(error: StorageError): Record<string, unknown> {
  if (error instanceof BadInputError) return { code: 'BAD_USER_INPUT' };
  if (error instanceof LimitExceededError) {
    return { code: error.code, limit: error.limit, max: error.max, actual: error.actual, itemIndex: error.itemIndex };
  }
  if (error instanceof RateLimitedError) return { code: error.code, retryAfterSeconds: error.retryAfterSeconds };
  return { code: error.code };
}

/** Where an error points: its nodes, or source and positions (jit's errors carry no nodes: src/graphql/jit.ts). */
function where(error: GraphQLError | null) {
  return { nodes: error?.nodes, source: error?.source, positions: error?.positions, path: error?.path };
}

/**
 * Yoga's maskError: storage errors keep their code and message; GraphQL's own errors (parse,
 * validation, coercion, limits) pass unchanged; database outages become the unavailability error;
 * anything else becomes INTERNAL with no details.
 */
export function maskError(error: unknown, onUnexpected: (error: unknown) => void): Error {
  const gqlError = error instanceof GraphQLError ? error : null;
  // A database outage met outside the storage facade's own mapping (a read helper) is still a clean unavailability.
  const original = mapDatabaseError(gqlError ? gqlError.originalError : error);
  if (original instanceof StorageError) {
    return new GraphQLError(original.message, {
      ...where(gqlError),
      extensions: storageErrorExtensions(original),
    });
  }
  if (gqlError && (!original || original instanceof GraphQLError)) {
    // Yoga's JSON body parser copies the parser's own error into `extensions.originalError` (its
    // name and message, which quotes the body): an internal detail, not the caller's to see.
    if (!gqlError.extensions?.originalError) return gqlError;
    const { originalError: _internal, ...extensions } = gqlError.extensions;
    return new GraphQLError(gqlError.message, { ...where(gqlError), extensions });
  }
  onUnexpected(original ?? error);
  return new GraphQLError('Unexpected error.', { ...where(gqlError), extensions: { code: 'INTERNAL' } });
}

/**
 * graphql-js ends some messages with `Did you mean "x"?` (a name near a misspelt one). Armor's
 * blockFieldSuggestion removes them from validation errors only; variable coercion errors (an
 * input object's unknown field) keep them, and they would enumerate the schema's input fields to a
 * caller who cannot introspect it. Removed here as well.
 */
export function withoutSuggestion(message: string): string {
  const at = message.lastIndexOf(' Did you mean ');
  return at >= 0 && message.endsWith('?') ? message.slice(0, at) : message;
}

/**
 * Request errors (parse, validation, armor limits, variable coercion: a result without `data`
 * whose errors all carry HTTP status 400) answer 400 whatever the Accept header, as the contract
 * says (Yoga keeps 200 for application/json clients), and variable errors get the BAD_USER_INPUT
 * code Yoga leaves out.
 */
export const requestErrorsAnswer400: Plugin = {
  onResultProcess({ result, setResult }) {
    if (Array.isArray(result) || Symbol.asyncIterator in result || 'data' in result || !result.errors?.length) return;
    const isRequestError = (e: GraphQLError) => (e.extensions?.http as { status?: unknown } | undefined)?.status === 400;
    if (!result.errors.every((e) => e instanceof GraphQLError && isRequestError(e))) return;
    setResult({
      ...result,
      errors: result.errors.map(
        (e) =>
          new GraphQLError(withoutSuggestion(e.message), {
            nodes: e.nodes,
            source: e.source,
            positions: e.positions,
            path: e.path,
            extensions: { ...e.extensions, code: e.extensions?.code ?? 'BAD_USER_INPUT', http: { ...(e.extensions?.http as object), spec: false } },
          }),
      ),
    });
  },
};
