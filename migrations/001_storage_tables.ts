import { sql, type Kysely } from 'kysely';
import { hasCitus, sequentialShardCommands } from '../src/db/citus.js';

/**
 * The install registry (global: a Citus reference table) and the per-tenant tables: records,
 * a lock row per install and the usage counters per namespace. On Citus every per-tenant table is distributed
 * by tenant_id and co-located with the records table.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sequentialShardCommands(db);
  await sql`
    CREATE TABLE ext_storage_installs (
      id uuid PRIMARY KEY,
      tenant_id uuid NOT NULL,
      extension_id text NOT NULL,
      enabled boolean NOT NULL,
      can_read boolean NOT NULL,
      can_write boolean NOT NULL,
      namespaces jsonb,
      quota jsonb NOT NULL DEFAULT '{}'::jsonb,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now()
    )`.execute(db);
  await sql`CREATE INDEX ext_storage_installs_tenant ON ext_storage_installs (tenant_id, id)`.execute(db);

  await sql`
    CREATE TABLE ext_storage_records (
      tenant_id uuid NOT NULL,
      install_id uuid NOT NULL,
      namespace text COLLATE "C" NOT NULL,
      key text COLLATE "C" NOT NULL,
      value jsonb NOT NULL,
      metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
      value_bytes integer NOT NULL,
      metadata_bytes integer NOT NULL,
      revision integer NOT NULL,
      schema_version integer,
      ttl_expires_at timestamptz,
      created_at timestamptz NOT NULL,
      updated_at timestamptz NOT NULL,
      PRIMARY KEY (tenant_id, install_id, namespace, key)
    )`.execute(db);
  await sql`
    CREATE INDEX ext_storage_records_ttl ON ext_storage_records (tenant_id, install_id, ttl_expires_at)
    WHERE ttl_expires_at IS NOT NULL`.execute(db);

  await sql`
    CREATE TABLE ext_storage_install_locks (
      tenant_id uuid NOT NULL,
      install_id uuid NOT NULL,
      PRIMARY KEY (tenant_id, install_id)
    )`.execute(db);

  await sql`
    CREATE TABLE ext_storage_namespaces (
      tenant_id uuid NOT NULL,
      install_id uuid NOT NULL,
      namespace text COLLATE "C" NOT NULL,
      key_count integer NOT NULL DEFAULT 0,
      bytes bigint NOT NULL DEFAULT 0,
      PRIMARY KEY (tenant_id, install_id, namespace)
    )`.execute(db);

  if (await hasCitus(db)) {
    await sql`SELECT create_reference_table('ext_storage_installs')`.execute(db);
    await sql`SELECT create_distributed_table('ext_storage_records', 'tenant_id')`.execute(db);
    for (const table of ['ext_storage_install_locks', 'ext_storage_namespaces']) {
      await sql`SELECT create_distributed_table(${table}, 'tenant_id', colocate_with => 'ext_storage_records')`.execute(db);
    }
  }
}

export async function down(db: Kysely<unknown>): Promise<void> {
  // Dropping a distributed or reference table also drops its shards.
  for (const table of ['ext_storage_namespaces', 'ext_storage_install_locks', 'ext_storage_records', 'ext_storage_installs']) {
    await sql`DROP TABLE IF EXISTS ${sql.table(table)}`.execute(db);
  }
}
