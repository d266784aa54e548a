/** GraphiQL for admins: served offline (no CDN), with example operations and, in dev mode, a token. */
import type { GraphiQLOptions } from 'graphql-yoga';

export interface GraphiQLDemo {
  token: string;
  installId: string;
}

export function exampleOperations(installId: string): Array<{ name: string; query: string; variables: string }> {
  const vars = (o: object) => JSON.stringify(o, null, 2);
  return [
    {
      name: 'read',
      query: `# Read one record and several at once (null where a key is missing).
query ReadRecords($installId: ID!) {
  record(installId: $installId, namespace: "settings", key: "theme") { key value revision updatedAt }
  records(installId: $installId, namespace: "settings", keys: ["theme", "missing"]) { key value revision }
}`,
      variables: vars({ installId }),
    },
    {
      name: 'write',
      query: `# Create or replace a record; ifRevision makes it conditional (0 = create only).
mutation WriteRecord($installId: ID!) {
  putRecord(input: { installId: $installId, namespace: "settings", key: "theme", value: { mode: "dark" } }) {
    __typename
    ... on PutRecordSuccess { record { key revision value } }
    ... on RevisionMismatch { currentRevision }
    ... on StorageError { code message }
  }
}`,
      variables: vars({ installId }),
    },
    {
      name: 'list',
      query: `# Page through a namespace by key; pass pageInfo.endCursor as "after" for the next page.
query ListRecords($installId: ID!, $after: String) {
  recordList(installId: $installId, namespace: "settings", first: 10, after: $after) {
    edges { cursor node { key revision } }
    pageInfo { hasNextPage endCursor }
  }
}`,
      variables: vars({ installId, after: null }),
    },
    {
      name: 'usage',
      query: `# Usage against quota, per namespace too.
query Usage($installId: ID!) {
  install(id: $installId) {
    extensionId enabled
    usage { namespaces keys bytes }
    quota { maxNamespaces maxKeysPerNamespace maxBytes }
    namespaces { name keyCount bytesUsed }
  }
}`,
      variables: vars({ installId }),
    },
    {
      name: 'schema',
      query: `# Set a JSON Schema (draft 2020-12) for a namespace; writes are validated against it.
mutation SetSchema($installId: ID!) {
  setNamespaceSchema(input: {
    installId: $installId, namespace: "settings",
    schema: { type: "object", properties: { mode: { enum: ["dark", "light"] } } }
  }) {
    __typename
    ... on SetNamespaceSchemaSuccess { schema { version } }
    ... on ValidationFailed { issues { path message } }
  }
}`,
      variables: vars({ installId }),
    },
  ];
}

/** Yoga's GraphiQL page also reads `variables` (the variables editor's start), which its type omits. */
export type GatewayGraphiQLOptions = GraphiQLOptions & { variables?: string };

export function graphiqlOptions(demo?: GraphiQLDemo): GatewayGraphiQLOptions {
  const installId = demo?.installId ?? '00000000-0000-0000-0000-000000000000';
  const headers = JSON.stringify(demo ? { Authorization: `Bearer ${demo.token}` } : { Authorization: 'Bearer <admin token>' }, null, 2);
  const tabs = exampleOperations(installId).map((op) => ({ query: op.query, variables: op.variables, headers }));
  return {
    title: 'Extension storage gateway',
    defaultQuery: tabs[0]!.query,
    defaultTabs: tabs,
    headers,
    defaultHeaders: headers,
    // The editors start from these, not from the active tab: without them the first tab's
    // variables stayed empty and its query failed ("$installId was not provided").
    variables: tabs[0]!.variables,
    shouldPersistHeaders: false,
  };
}
