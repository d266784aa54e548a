import SchemaBuilder from '@pothos/core';
import ComplexityPlugin from '@pothos/plugin-complexity';
import ErrorsPlugin from '@pothos/plugin-errors';
import { GraphQLError } from 'graphql';
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
  plugins: [ErrorsPlugin, ComplexityPlugin],
  defaultFieldNullability: false,
  errors: { defaultTypes: [] },
  complexity: {
    defaultComplexity: 1,
    defaultListMultiplier: 1,
    limit: (ctx) => ({
      complexity: ctx.config.graphqlLimits.maxCost,
      depth: ctx.config.graphqlLimits.maxDepth,
      breadth: ctx.config.graphqlLimits.maxCost,
    }),
    complexityError: (kind, result) =>
      new GraphQLError(`query ${kind.toLowerCase()} ${result[kind.toLowerCase() as 'complexity']} exceeds the limit`, {
        extensions: { code: 'QUERY_TOO_COMPLEX', http: { status: 400 } },
      }),
  },
});

builder.queryType({});
builder.mutationType({});
