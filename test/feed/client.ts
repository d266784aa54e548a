/**
 * GraphQL documents and helpers for the change-feed contract tests (docs/api.md, "Change feed";
 * docs/change-feed.md). The documents are written by hand against contract/schema.graphql.
 */
import { expect } from 'vitest';
import { dataOf, type GqlResult } from '../support/app.js';

export const CHANGES = `query Changes($namespace: String, $prefix: String, $after: String, $first: Int, $installId: ID) {
  changes(namespace: $namespace, prefix: $prefix, after: $after, first: $first, installId: $installId) {
    edges { cursor node { cursor at operation namespace key revision actor } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}`;

export const CHANGES_WITH_RECORDS = `query ChangesWithRecords($namespace: String, $after: String, $first: Int, $installId: ID) {
  changes(namespace: $namespace, after: $after, first: $first, installId: $installId) {
    edges { cursor node { cursor operation namespace key revision actor record { namespace key value revision } } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}`;

export const CHANGES_CURSOR = `query Head($installId: ID) { install(id: $installId) { changesCursor } }`;

export const COMMIT = `mutation Commit($input: CommitInput!) {
  commit(input: $input) {
    __typename
    ... on CommitSuccess { records { namespace key revision } committed cursor }
    ... on StorageError { code message }
  }
}`;

export interface ChangeNode {
  cursor: string;
  at?: string;
  operation: 'PUT' | 'DELETE' | 'EXPIRE';
  namespace: string;
  key: string;
  revision: number;
  actor: string;
  record?: { namespace: string; key: string; value: unknown; revision: number } | null;
}

export interface ChangePage {
  edges: Array<{ cursor: string; node: ChangeNode }>;
  pageInfo: { hasNextPage: boolean; hasPreviousPage: boolean; startCursor: string | null; endCursor: string };
}

export type Gql = (query: string, variables?: Record<string, unknown>) => Promise<GqlResult>;

export interface ChangeArgs {
  namespace?: string;
  prefix?: string;
  after?: string | null;
  first?: number;
  installId?: string;
}

/** One page, asserting the page's own invariants (every edge's cursor is its node's; PageInfo as the contract says). */
export async function changesPage(gql: Gql, args: ChangeArgs = {}, query = CHANGES): Promise<ChangePage> {
  const page = dataOf(await gql(query, { ...args })).changes as ChangePage;
  for (const e of page.edges) expect(e.cursor).toBe(e.node.cursor);
  expect(page.pageInfo.hasPreviousPage).toBe(false);
  expect(typeof page.pageInfo.endCursor).toBe('string');
  expect(page.pageInfo.startCursor).toBe(page.edges[0]?.cursor ?? null);
  if (page.edges.length > 0) expect(page.pageInfo.endCursor).toBe(page.edges[page.edges.length - 1]!.cursor);
  return page;
}

/** Every change after `after` up to the head now, following endCursor; returns the changes and the final cursor. */
export async function drain(gql: Gql, args: ChangeArgs = {}, query = CHANGES): Promise<{ changes: ChangeNode[]; cursor: string }> {
  const changes: ChangeNode[] = [];
  let after = args.after ?? null;
  for (;;) {
    const page = await changesPage(gql, { ...args, after }, query);
    changes.push(...page.edges.map((e) => e.node));
    after = page.pageInfo.endCursor;
    if (!page.pageInfo.hasNextPage) return { changes, cursor: after };
  }
}

/** The install's changesCursor now. */
export async function headOf(gql: Gql, installId?: string): Promise<string> {
  return dataOf(await gql(CHANGES_CURSOR, { installId })).install.changesCursor as string;
}

/** The one GraphQL error of a response: its code, and that no data leaked. */
export function feedErrorOf(res: GqlResult): { code: string; extensions: Record<string, any>; message: string } {
  expect(res.body.errors, JSON.stringify(res.body)).toHaveLength(1);
  const error = res.body.errors![0]!;
  expect(res.body.data ?? null).toBeNull();
  return { code: error.extensions?.code, extensions: error.extensions ?? {}, message: error.message };
}
