/**
 * Typed documents for the client (client/index.ts): `npm run codegen`.
 * Offline and deterministic: the schema is the printed SDL in this repository (never a running
 * server), the documents are client/operations/*.graphql, and no formatter runs afterwards, so the
 * output depends on these inputs only. test/doors/codegen.test.ts fails when client/generated/ is stale.
 */
import type { CodegenConfig } from '@graphql-codegen/cli';

const config: CodegenConfig = {
  schema: 'schema/schema.graphql',
  documents: ['client/operations/*.graphql'],
  ignoreNoDocuments: false,
  silent: true,
  generates: {
    'client/generated/': {
      preset: 'client',
      presetConfig: {
        // The client reads whole results; masking only helps component trees.
        fragmentMasking: false,
      },
      config: {
        // Documents as plain strings: the client needs no graphql-js at run time (browser bundle).
        documentMode: 'string',
        importExtension: '.js',
        useTypeImports: true,
        enumsAsTypes: true,
        strictScalars: true,
        scalars: {
          JSON: 'unknown',
          DateTime: 'string',
          SafeInt: 'number',
        },
      },
    },
  },
};

export default config;
