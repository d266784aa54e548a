/** Maps core errors to GraphQL errors, once, for every field error of a response. */
import { GraphQLError } from 'graphql';
import {
  BadInputError,
  LimitExceededError,
  RateLimitedError,
  StorageError,
} from '../storage/errors.js';

export function storageErrorExtensions(error: StorageError): Record<string, unknown> {
  if (error instanceof BadInputError) return { code: 'BAD_USER_INPUT' };
  if (error instanceof LimitExceededError) {
    return { code: error.code, limit: error.limit, max: error.max, actual: error.actual, itemIndex: error.itemIndex };
  }
  if (error instanceof RateLimitedError) return { code: error.code, retryAfterSeconds: error.retryAfterSeconds };
  return { code: error.code };
}

/**
 * Yoga's maskError: storage errors keep their code and message; GraphQL's own errors (parse,
 * validation, coercion, limits) pass unchanged; anything else becomes INTERNAL with no details.
 */
export function maskError(error: unknown, onUnexpected: (error: unknown) => void): Error {
  const gqlError = error instanceof GraphQLError ? error : null;
  const original = gqlError ? gqlError.originalError : error;
  if (original instanceof StorageError) {
    return new GraphQLError(original.message, {
      nodes: gqlError?.nodes,
      path: gqlError?.path,
      extensions: storageErrorExtensions(original),
    });
  }
  if (gqlError && (!original || original instanceof GraphQLError)) return gqlError;
  onUnexpected(original ?? error);
  return new GraphQLError('Unexpected error.', { nodes: gqlError?.nodes, path: gqlError?.path, extensions: { code: 'INTERNAL' } });
}
