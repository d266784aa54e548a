/** Helpers for the export and import tests: the HTTP doors, and an install's whole observable state. */
import type { TestApp } from '../support/app.js';

export type Line = Record<string, any>;

export async function exportOf(t: TestApp, installId: string, token?: string): Promise<{ status: number; type: string | null; text: string; lines: Line[] }> {
  const res = await fetch(`${t.url}/api/admin/installs/${installId}/export`, { headers: { authorization: `Bearer ${token ?? (await t.adminToken())}` } });
  const text = await res.text();
  const lines = res.status === 200 ? text.trimEnd().split('\n').map((l) => JSON.parse(l) as Line) : [];
  return { status: res.status, type: res.headers.get('content-type'), text, lines };
}

export async function importInto(t: TestApp, installId: string, body: string, mode?: string, token?: string): Promise<{ status: number; body: any }> {
  const res = await fetch(`${t.url}/api/admin/installs/${installId}/import${mode ? `?mode=${mode}` : ''}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token ?? (await t.adminToken())}`, 'content-type': 'application/x-ndjson' },
    body,
  });
  return { status: res.status, body: await res.json() };
}

export const ndjson = (lines: unknown[]) => lines.map((l) => JSON.stringify(l)).join('\n') + '\n';

/** Everything an import could change: records and schemas (the export's lines), usage, audit, the change feed. */
export async function stateOf(t: TestApp, installId: string): Promise<unknown> {
  const caller = t.adminCaller();
  const scope = await t.app.storage.resolveInstall(caller, installId, 'read');
  const { lines } = await exportOf(t, installId);
  const audit = await t.app.storage.auditLog(caller, scope, 100, null);
  const changes = await t.app.storage.changes(caller, scope, { first: 1000 });
  return {
    lines: lines.slice(1),
    usage: await t.app.storage.usage(caller, scope),
    audit: audit.items.map((e) => [e.id, e.operation, e.key]),
    changes: changes.changes.map((c) => [c.seq, c.operation, c.key, c.revision]),
    cursor: await t.app.storage.changesCursor(caller, scope),
  };
}

export function header(installId = '00000000-0000-0000-0000-000000000000', tenantId = '00000000-0000-0000-0000-000000000000'): Line {
  return { type: 'header', format: 'ext-storage-export', version: 1, tenantId, installId, exportedAt: '2024-01-01T00:00:00.000Z', changesCursor: 'x' };
}

export function record(namespace: string, key: string, value: unknown, extra: Partial<Line> = {}): Line {
  return {
    type: 'record',
    namespace,
    key,
    value,
    metadata: {},
    revision: 1,
    schemaVersion: null,
    ttlExpiresAt: null,
    createdAt: '2024-01-01T00:00:00.000Z',
    updatedAt: '2024-01-02T00:00:00.000Z',
    ...extra,
  };
}

/** A record line's stored bytes, as the contract counts them. */
export const bytesOf = (r: Line) => Buffer.byteLength(JSON.stringify(r.value)) + Buffer.byteLength(JSON.stringify(r.metadata ?? {}));

export function file(records: Line[], schemas: Line[] = [], end?: Partial<Line>): string {
  return ndjson([header(), ...schemas, ...records, { type: 'end', records: records.length, bytes: records.reduce((n, r) => n + bytesOf(r), 0), ...end }]);
}
