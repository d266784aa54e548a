import { sql, type Kysely } from 'kysely';
import { hasCitus, sequentialShardCommands } from '../src/db/citus.js';

/** Per-namespace JSON Schema versions and the audit log, both per tenant. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sequentialShardCommands(db);
  await sql`
    CREATE TABLE ext_storage_schemas (
      tenant_id uuid NOT NULL,
      install_id uuid NOT NULL,
      namespace text COLLATE "C" NOT NULL,
      version integer NOT NULL,
      schema jsonb NOT NULL,
      created_at timestamptz NOT NULL,
      PRIMARY KEY (tenant_id, install_id, namespace, version)
    )`.execute(db);
  await sql`
    CREATE TABLE ext_storage_audit (
      tenant_id uuid NOT NULL,
      id bigserial NOT NULL,
      install_id uuid NOT NULL,
      namespace text,
      key text,
      operation text NOT NULL,
      revision integer,
      bytes_delta bigint NOT NULL,
      actor text NOT NULL,
      request_id text,
      at timestamptz NOT NULL,
      PRIMARY KEY (tenant_id, id)
    )`.execute(db);
  await sql`CREATE INDEX ext_storage_audit_install ON ext_storage_audit (tenant_id, install_id, id DESC)`.execute(db);
  if (await hasCitus(db)) {
    for (const table of ['ext_storage_schemas', 'ext_storage_audit']) {
      await sql`SELECT create_distributed_table(${table}, 'tenant_id', colocate_with => 'ext_storage_records')`.execute(db);
    }
  }
}

/** Drops the schema registry and the audit log; records, usage and installs are untouched. */
export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP TABLE IF EXISTS ext_storage_audit`.execute(db);
  await sql`DROP TABLE IF EXISTS ext_storage_schemas`.execute(db);
}
