import { lexicographicSortSchema, printSchema, type GraphQLSchema } from 'graphql';
import { builder } from './builder.js';
import './types/scalars.js';
import './types/errors.js';
import './types/records.js';
import './types/installs.js';
import './types/query.js';
import './types/changes.js';
import './types/mutations.js';
import './types/subscription.js';

export const schema: GraphQLSchema = builder.toSchema({ sortSchema: false });

/** The SDL checked in at schema/schema.graphql. */
export function printedSchema(): string {
  return printSchema(lexicographicSortSchema(schema)) + '\n';
}
