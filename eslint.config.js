/**
 * ESLint lints one thing here: the printed GraphQL schema, schema/schema.graphql
 * (`npm run lint:schema`; test/graphql/schema-lint.test.ts runs the same config in `npm test`).
 * Rules: @graphql-eslint's schema-all and schema-relay sets, with require-description on for
 * every kind of definition. A rule switched off or narrowed says why beside it.
 */
import { readFileSync } from 'node:fs';
import graphqlPlugin from '@graphql-eslint/eslint-plugin';

/** Every kind of schema definition must carry a description. */
const REQUIRE_DESCRIPTION = {
  types: true, // object, interface, input object, union, enum and scalar types
  rootField: true,
  FieldDefinition: true,
  InputValueDefinition: true, // arguments and input fields
  EnumValueDefinition: true,
  DirectiveDefinition: true,
};

/**
 * The flat config for one schema document. `schemaSdl` is the schema the schema-aware rules
 * (reachability, root types, relay shapes) check against: the SDL being linted itself.
 *
 * @param {string} schemaSdl
 * @returns {import('eslint').Linter.Config[]}
 */
export function schemaLintConfig(schemaSdl) {
  return [
    {
      // The printed schema only: client/operations/*.graphql are operations, not a schema.
      files: ['schema/**/*.graphql'],
      languageOptions: {
        parser: graphqlPlugin.parser,
        parserOptions: { schemaSdl },
      },
      plugins: { '@graphql-eslint': graphqlPlugin },
      rules: {
        ...graphqlPlugin.configs['flat/schema-all'].rules,
        ...graphqlPlugin.configs['flat/schema-relay'].rules,
        '@graphql-eslint/require-description': ['error', REQUIRE_DESCRIPTION],
        // Narrowed: the file is printed by graphql-js's lexicographicSortSchema (src/graphql/schema.ts),
        // so the order is plain alphabetical; schema-all's groups (id first, createdAt and updatedAt
        // last) would contradict the printer. The rule still checks the printer's order.
        '@graphql-eslint/alphabetize': [
          'error',
          {
            definitions: true,
            fields: ['ObjectTypeDefinition', 'InterfaceTypeDefinition', 'InputObjectTypeDefinition'],
            values: true,
            arguments: ['FieldDefinition', 'DirectiveDefinition'],
          },
        ],
        // Narrowed: objects with an identity have an `id: ID!`; connections, edges, success
        // payloads, typed errors and the values listed are parts of an answer, with no identity of
        // their own (the contract, contract/schema.graphql, gives them no id). A Change is named by
        // its feed position, `cursor`, and the contract gives it no id either.
        '@graphql-eslint/strict-id-in-types': [
          'error',
          {
            acceptedIdNames: ['id'],
            acceptedIdTypes: ['ID'],
            exceptions: {
              suffixes: ['Connection', 'Edge', 'Success'],
              types: [
                'PageInfo',
                'Change',
                'CheckConflict',
                'CommitConflict',
                'LimitExceeded',
                'QuotaExceeded',
                'RevisionMismatch',
                'ValidationFailed',
                'ValidationIssue',
                'NamespaceSchema',
                'Quota',
                'StorageCapabilities',
                'Usage',
              ],
            },
          },
        ],
        // Narrowed: pages go forward only (contract README: PageInfo.hasPreviousPage is always
        // false), so `first`/`after` without `last`/`before`.
        '@graphql-eslint/relay-arguments': ['error', { includeBoth: false }],
        // Narrowed: plain lists are part of the contract (records(keys), Install.namespaces,
        // ValidationFailed.issues, ...), not only lists of edges; and AuditEvent nodes are not Relay
        // Nodes in the contract (there is no node(id) for an audit event).
        '@graphql-eslint/relay-edge-types': [
          'error',
          { withEdgeSuffix: true, shouldImplementNode: false, listTypeCanWrapOnlyEdgeType: false },
        ],
        // Off: schema-all uses it to forbid mutations (for read-only APIs); this API writes.
        '@graphql-eslint/no-root-type': 'off',
        // Off: nullability of root fields is the contract's: a mutation returns a result union
        // whose errors are members, never null; lists and connections are never null. Making them
        // nullable would break the contract.
        '@graphql-eslint/require-nullable-result-in-root': 'off',
        // Off: upsertInstall returns Install as the contract says; a `query: Query` field on
        // Install would be noise, and clients refetch through Query as usual.
        '@graphql-eslint/require-field-of-type-query-in-mutation-result': 'off',
      },
    },
  ];
}

export default schemaLintConfig(readFileSync(new URL('schema/schema.graphql', import.meta.url), 'utf8'));
