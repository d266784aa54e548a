/** The install registry (a global reference table) and capability checks against it. */
import { sql } from 'kysely';
import type { QuotaSettings } from '../config.js';
import type { Db } from '../db/database.js';
import { ForbiddenError, LimitExceededError } from './errors.js';
import { checkNamespace } from './limits.js';
import { normalizeId, type Principal } from './principal.js';

export interface Install {
  id: string;
  tenantId: string;
  extensionId: string;
  enabled: boolean;
  canRead: boolean;
  canWrite: boolean;
  namespaces: string[] | null;
  quotaOverrides: Partial<QuotaSettings>;
  createdAt: Date;
  updatedAt: Date;
}

/** Where a storage call acts, after access was granted. */
export interface InstallScope {
  tenantId: string;
  installId: string;
  install: Install;
  quota: QuotaSettings;
}

export type Need = 'read' | 'write' | 'inspect';

export const QUOTA_FIELDS = ['maxNamespaces', 'maxKeysPerNamespace', 'maxBytes', 'maxValueBytes', 'maxMetadataBytes'] as const;

export function effectiveQuota(install: Install, defaults: QuotaSettings): QuotaSettings {
  return { ...defaults, ...install.quotaOverrides };
}

type InstallRow = {
  id: string;
  tenant_id: string;
  extension_id: string;
  enabled: boolean;
  can_read: boolean;
  can_write: boolean;
  namespaces: string[] | null;
  quota: Record<string, number>;
  created_at: Date;
  updated_at: Date;
};

export function toInstall(row: InstallRow): Install {
  return {
    id: row.id,
    tenantId: row.tenant_id,
    extensionId: row.extension_id,
    enabled: row.enabled,
    canRead: row.can_read,
    canWrite: row.can_write,
    namespaces: row.namespaces,
    quotaOverrides: row.quota ?? {},
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

export async function findInstalls(db: Db, ids: readonly string[]): Promise<Map<string, Install>> {
  const valid = ids.map(normalizeId).filter((id): id is string => id !== null);
  if (valid.length === 0) return new Map();
  const rows = await db
    .selectFrom('ext_storage_installs')
    .selectAll()
    .where('id', '=', sql<string>`ANY(${sql.val(`{${[...new Set(valid)].join(',')}}`)}::uuid[])`)
    .execute();
  return new Map(rows.map((r) => [r.id, toInstall(r as InstallRow)]));
}

/**
 * The one place that decides whether a principal may act on an install.
 * `installId` is what the caller named (extensions may omit it or name their own).
 */
export function authorize(
  principal: Principal,
  requestedId: string | null | undefined,
  install: Install | undefined,
  need: Need,
  namespace?: string,
): void {
  if (principal.kind === 'admin') {
    if (!install || install.tenantId !== principal.tenantId) {
      throw new ForbiddenError(requestedId ? 'no such install in your tenant' : 'admins must pass an install id');
    }
    return;
  }
  if (requestedId !== null && requestedId !== undefined && normalizeId(requestedId) !== principal.installId) {
    throw new ForbiddenError('an extension may only act on its own install');
  }
  if (!install || !install.enabled || install.tenantId !== principal.tenantId) {
    throw new ForbiddenError('install is unknown or disabled');
  }
  if (need === 'inspect') return;
  const scope = principal.kind === 'extension' ? principal.scope : { read: true, write: true };
  if (need === 'read' && !(install.canRead && scope.read)) throw new ForbiddenError('no read capability');
  if (need === 'write' && !(install.canWrite && scope.write)) throw new ForbiddenError('no write capability');
  if (namespace !== undefined && install.namespaces !== null && !install.namespaces.includes(namespace)) {
    throw new ForbiddenError(`namespace "${namespace}" is not allowed for this install`);
  }
}

export interface UpsertInstallInput {
  id: string;
  tenantId?: string | null;
  extensionId: string;
  enabled: boolean;
  canRead: boolean;
  canWrite: boolean;
  /** undefined keeps the stored list on update; null means any namespace. */
  namespaces?: string[] | null;
  /** undefined keeps the stored overrides; null resets to the server defaults; a field set to null resets that field. */
  quota?: Partial<Record<keyof QuotaSettings, number | null>> | null;
}

export function checkUpsertInput(input: UpsertInstallInput): void {
  if (typeof input.extensionId !== 'string' || input.extensionId.length < 1 || input.extensionId.length > 200 || /[\u0000-\u001f\u007f]/.test(input.extensionId) || !input.extensionId.isWellFormed()) {
    throw new LimitExceededError('keyFormat', 'extensionId must be 1 to 200 printable characters');
  }
  if (input.namespaces) {
    if (input.namespaces.length > 1000) throw new LimitExceededError('namespaceFormat', 'at most 1000 namespaces');
    input.namespaces.forEach(checkNamespace);
  }
  if (input.quota) {
    for (const [field, v] of Object.entries(input.quota)) {
      if (!(QUOTA_FIELDS as readonly string[]).includes(field)) continue;
      if (v !== null && v !== undefined && (!Number.isSafeInteger(v) || v < 0)) {
        throw new LimitExceededError('valueFormat', `quota.${field} must be a non-negative integer`);
      }
    }
  }
}

/**
 * Overrides after an upsert: an omitted `quota` keeps the stored overrides, `null` resets them all,
 * and a given QuotaInput replaces them (its omitted or null fields take the server default).
 */
export function mergeQuota(
  stored: Partial<QuotaSettings>,
  update: UpsertInstallInput['quota'],
): Partial<QuotaSettings> {
  if (update === undefined) return stored;
  const merged: Partial<QuotaSettings> = {};
  if (update === null) return merged;
  for (const field of QUOTA_FIELDS) {
    const v = update[field];
    if (v !== null && v !== undefined) merged[field] = v;
  }
  return merged;
}

