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
        persistedDocuments: { mode: 'embedHashInDocument', hashAlgorithm: 'sha256' },
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
    // Which concrete types each interface and union has, for normalized caches (Apollo Client's
    // InMemoryCache, urql Graphcache): without it `... on StorageError { code message }` is dropped.
    'client/generated/possible-types.ts': {
      plugins: ['fragment-matcher'],
      config: {
        apolloClientVersion: 3,
        useExplicitTyping: true,
      },
    },
    // The schema's shape (types, fields, nullability; no descriptions) for urql Graphcache: with it,
    // Graphcache matches fragments on interfaces and unions exactly and writes no field of a
    // fragment that does not apply (possibleTypes alone still leaves it guessing on writes).
    'client/generated/graphcache-schema.ts': {
      plugins: ['urql-introspection'],
      config: {
        module: 'es2015',
        // A type-only import of graphql's IntrospectionQuery: erased, so still no graphql-js at run time.
        useTypeImports: true,
      },
    },
  },
};

export default config;
