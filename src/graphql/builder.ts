import SchemaBuilder from '@pothos/core';
import ErrorsPlugin from '@pothos/plugin-errors';
import type { GraphQLContext } from './context.js';

export const builder = new SchemaBuilder<{
  Context: GraphQLContext;
  DefaultFieldNullability: false;
  Scalars: {
    JSON: { Input: unknown; Output: unknown };
    DateTime: { Input: Date; Output: Date };
    SafeInt: { Input: number; Output: number };
    ID: { Input: string; Output: string };
  };
}>({
  // Query cost is priced by src/graphql/cost.ts (one model for the limit and the rate limiter).
  plugins: [ErrorsPlugin],
  defaultFieldNullability: false,
  errors: { defaultTypes: [] },
});

builder.queryType({
  description:
    'Reads. Extension callers read their own install; admins pass the install id. Errors are GraphQL errors whose `extensions.code` is a StorageErrorCode or a request-level code such as BAD_USER_INPUT or QUERY_TOO_COSTLY.',
});
builder.mutationType({
  description:
    'Writes. Record writes return a result union: the success type, or a typed StorageError saying why nothing was written.',
});
