/** Shared checks for the security tests: refused requests, leak detection, admin-side verification. */
import { expect } from 'vitest';
import type { GqlResult, TestApp } from '../support/app.js';

/** Signs of internals that must never reach a caller. */
const INTERNALS = [/"stack"/, /node_modules/, / {4}at /, /\bat [\w.<>]+ \(/];

export function expectNoInternals(res: GqlResult | { status: number; text: string }): void {
  const text = 'text' in res ? res.text : JSON.stringify(res.body);
  for (const pattern of INTERNALS) expect(text).not.toMatch(pattern);
}

/** Every top-level field of `data` is null (or there is no data at all). */
export function expectNoData(res: GqlResult): void {
  const data = res.body.data as Record<string, unknown> | null | undefined;
  if (data === null || data === undefined) return;
  for (const value of Object.values(data)) expect(value).toBeNull();
}

export function errorCodes(res: GqlResult): string[] {
  return (res.body.errors ?? []).map((e) => String(e.extensions?.code));
}

/** A request refused before execution because the credential is not valid. */
export function expectUnauthenticated(res: GqlResult): void {
  expect(res.status).toBe(401);
  expect(res.body.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
  expect(res.body).not.toHaveProperty('data');
  expectNoInternals(res);
}

/** FORBIDDEN with nothing readable: `status` 403 when refused before execution, 200 for a field error. */
export function expectForbidden(res: GqlResult, status: 200 | 403): void {
  expect(res.status).toBe(status);
  expect(res.body.errors?.length ?? 0).toBeGreaterThan(0);
  expect(errorCodes(res).every((c) => c === 'FORBIDDEN')).toBe(true);
  if (status === 403) expect(res.body).not.toHaveProperty('data');
  expectNoData(res);
  expectNoInternals(res);
}

/** None of `secrets` appears anywhere in the response (body and headers). */
export function expectNoLeak(res: GqlResult, secrets: readonly string[]): void {
  const headers: string[] = [];
  res.headers.forEach((v, k) => headers.push(`${k}: ${v}`));
  const text = JSON.stringify(res.body) + headers.join('\n');
  for (const secret of secrets) expect(text).not.toContain(secret);
}

export interface StoredState {
  record: { value: unknown; revision: number } | null;
  usage: { namespaces: number; keys: number; bytes: number };
  auditOperations: string[];
}

/** What an admin of the install's tenant sees: one record, the usage, the audit log (newest first). */
export async function adminView(t: TestApp, install: { id: string; tenantId: string }, namespace: string, key: string): Promise<StoredState> {
  const res = await t.gql(
    `query($id: ID!, $ns: String!, $key: String!) {
      record(installId: $id, namespace: $ns, key: $key) { value revision }
      install(id: $id) { usage { namespaces keys bytes } auditLog(first: 100) { edges { node { operation } } } }
    }`,
    { id: install.id, ns: namespace, key },
    { token: await t.adminToken(install.tenantId) },
  );
  expect(res.body.errors).toBeUndefined();
  return {
    record: res.body.data.record,
    usage: res.body.data.install.usage,
    auditOperations: res.body.data.install.auditLog.edges.map((e: { node: { operation: string } }) => e.node.operation),
  };
}

/** Raw HTTP to /graphql, for requests the gql helper cannot make. */
export async function rawRequest(
  t: TestApp,
  init: { method?: string; path?: string; headers?: Record<string, string>; body?: string },
): Promise<GqlResult & { text: string }> {
  const res = await fetch(`${t.url}${init.path ?? '/graphql'}`, { method: init.method ?? 'POST', headers: init.headers, body: init.body });
  const text = await res.text();
  let body: GqlResult['body'];
  try {
    body = JSON.parse(text) as GqlResult['body'];
  } catch {
    body = { raw: text };
  }
  return { status: res.status, headers: res.headers, body, text };
}

export const PUT = `mutation($input: PutRecordInput!) {
  putRecord(input: $input) {
    __typename
    ... on PutRecordSuccess { record { key value revision } }
    ... on LimitExceeded { limit max actual }
  }
}`;
