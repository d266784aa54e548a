/**
 * The baseline of `npm run bench`: node:http + pg, no GraphQL, no auth, no guards, one statement
 * per request, the least SQL that answers each scenario. Reads run the gateway's SELECTs (the same
 * rows, filters and order as src/storage/records.ts), value and metadata as jsonb, parsed by the
 * driver (the gateway takes jsonb's text and writes it unparsed, src/storage/json-text.ts); a put is a plain upsert, a create-only
 * put an insert that does nothing on conflict, a bulk put one multi-row upsert, a commit one upsert
 * per operation in one transaction, an increment one upsert of a number (no lock row, no usage
 * counters, no audit, no checks). Two routes for the change feed: a put that also numbers its change
 * (the upsert, the install's lock-row counter + 1 and the change row, one statement), and a page of
 * changes (one keyset SELECT on the changes table).
 *
 * Statements run as named prepared statements, as the gateway's do (src/db/database.ts), so the
 * baseline gets the same parse-once advantage; BARE_PREPARED=0 sends them unnamed.
 *
 * Env: BARE_DATABASE_URL, BARE_TENANT, BARE_INSTALL, BARE_POOL_MAX (20), BARE_PREPARED (1), PORT, HOST.
 * Routes (POST, JSON body): /noop {}, /get {namespace,key}, /records {namespace,keys}, /list {namespace,first,afterKey},
 * /put {namespace,key,value,metadata,ifRevision?} (ifRevision absent: upsert; 0: create only, 409 if the key exists),
 * /bulk {namespace,items}, /commit {operations: [{put: {namespace,key,value,metadata}}]} (BEGIN, one upsert per
 * operation, COMMIT: the one route with more than one statement), /increment {namespace,key,by} (an
 * upsert adding `by` to the stored number, exact decimal), /put-feed (as /put, plus the change row),
 * /changes {after, first} (changes with seq > after, by seq); GET /healthz. Every route acts on BARE_INSTALL, or on the install named in
 * an `x-install-id` header (the put16 scenario spreads its writes over several installs).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import pg from 'pg';

const INT8_OID = 20;
const pool = new pg.Pool({
  connectionString: process.env.BARE_DATABASE_URL,
  max: Number(process.env.BARE_POOL_MAX ?? 20),
  types: {
    getTypeParser: ((oid: number, format?: string) =>
      oid === INT8_OID ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
  },
});
pool.on('error', () => undefined);
const prepared = process.env.BARE_PREPARED !== '0';
const names = new Map<string, string>();
/** pool.query, as a named prepared statement unless BARE_PREPARED=0. */
function query(text: string, values: unknown[]) {
  if (!prepared) return pool.query(text, values);
  let name = names.get(text);
  if (!name) names.set(text, (name = `bare_${names.size}`));
  return pool.query({ name, text, values });
}
const tenant = process.env.BARE_TENANT!;
const defaultInstall = process.env.BARE_INSTALL!;

const COLUMNS = '"namespace", "key", "value", "metadata", "revision", "schema_version", "ttl_expires_at", "created_at", "updated_at"';
const LIVE = '(ttl_expires_at IS NULL OR ttl_expires_at > now())';
const BY_KEYS = `select ${COLUMNS} from "ext_storage_records" where "tenant_id" = $1 and "install_id" = $2 and "namespace" = $3
  and "key" = ANY(ARRAY(SELECT jsonb_array_elements_text($4::jsonb))) and ${LIVE}`;
const PAGE_FIRST = `select ${COLUMNS} from "ext_storage_records" where "tenant_id" = $1 and "install_id" = $2 and "namespace" = $3
  and ${LIVE} order by "key" limit $4`;
const PAGE_AFTER = `select ${COLUMNS} from "ext_storage_records" where "tenant_id" = $1 and "install_id" = $2 and "namespace" = $3
  and ${LIVE} and "key" > $4 order by "key" limit $5`;
const INSERT = `INSERT INTO ext_storage_records AS r
    (tenant_id, install_id, namespace, key, value, metadata, value_bytes, metadata_bytes, revision,
     schema_version, ttl_expires_at, created_at, updated_at)
  VALUES ($1::uuid, $2::uuid, $3, $4, $5::jsonb, $6::jsonb, $7::int, $8::int, 1, NULL, NULL, now(), now())`;
const UPSERT = `${INSERT}
  ON CONFLICT (tenant_id, install_id, namespace, key) DO UPDATE SET
    value = EXCLUDED.value, metadata = EXCLUDED.metadata, value_bytes = EXCLUDED.value_bytes,
    metadata_bytes = EXCLUDED.metadata_bytes, revision = r.revision + 1, updated_at = EXCLUDED.updated_at
  RETURNING r.key, r.revision, r.updated_at`;
const CREATE = `${INSERT}
  ON CONFLICT (tenant_id, install_id, namespace, key) DO NOTHING
  RETURNING r.key, r.revision, r.updated_at`;
const BULK = `INSERT INTO ext_storage_records AS r
    (tenant_id, install_id, namespace, key, value, metadata, value_bytes, metadata_bytes, revision,
     schema_version, ttl_expires_at, created_at, updated_at)
  SELECT $1::uuid, $2::uuid, $3, x.key, x.value, x.metadata, x.value_bytes, x.metadata_bytes, 1, NULL, NULL, now(), now()
    FROM jsonb_to_recordset($4::jsonb) AS x(key text, value jsonb, metadata jsonb, value_bytes int, metadata_bytes int)
  ON CONFLICT (tenant_id, install_id, namespace, key) DO UPDATE SET
    value = EXCLUDED.value, metadata = EXCLUDED.metadata, value_bytes = EXCLUDED.value_bytes,
    metadata_bytes = EXCLUDED.metadata_bytes, revision = r.revision + 1, updated_at = EXCLUDED.updated_at
  RETURNING r.key, r.revision`;
/** A counter: a missing row starts at `by`; an existing one gets value + by (jsonb number → numeric → jsonb). */
const INCREMENT = `INSERT INTO ext_storage_records AS r
    (tenant_id, install_id, namespace, key, value, metadata, value_bytes, metadata_bytes, revision,
     schema_version, ttl_expires_at, created_at, updated_at)
  VALUES ($1::uuid, $2::uuid, $3, $4, to_jsonb($5::numeric), '{}'::jsonb, octet_length($5::numeric::text), 2, 1, NULL, NULL, now(), now())
  ON CONFLICT (tenant_id, install_id, namespace, key) DO UPDATE SET
    value = to_jsonb(r.value::numeric + $5::numeric), value_bytes = octet_length((r.value::numeric + $5::numeric)::text),
    revision = r.revision + 1, updated_at = now()
  RETURNING r.key, r.revision, r.value`;
/**
 * A put that feeds the change feed, the least SQL for it: the upsert, the install's counter on its
 * lock row + 1 (held until commit, which orders the changes, as the gateway's write function does)
 * and the change row. No retention, no usage counters, no audit.
 */
const PUT_FEED = `WITH up AS (${UPSERT}),
  s AS (UPDATE ext_storage_install_locks SET change_seq = change_seq + 1
         WHERE tenant_id = $1::uuid AND install_id = $2::uuid RETURNING change_seq)
  INSERT INTO ext_storage_changes (tenant_id, install_id, seq, namespace, key, operation, revision, actor, at)
  SELECT $1::uuid, $2::uuid, s.change_seq, $3, up.key, 'put', up.revision, 'bare', now() FROM up, s
  RETURNING key, revision, seq`;
/** A page of an install's changes after a position (the same table and key as the gateway's scan). */
const CHANGES = `SELECT seq, at, operation, namespace, key, revision, actor FROM ext_storage_changes
  WHERE tenant_id = $1 AND install_id = $2 AND seq > $3 ORDER BY seq LIMIT $4`;

/** A pool client's query, as a named prepared statement unless BARE_PREPARED=0 (names shared with `query`). */
function clientQuery(client: pg.PoolClient, text: string, values: unknown[]) {
  if (!prepared) return client.query(text, values);
  let name = names.get(text);
  if (!name) names.set(text, (name = `bare_${names.size}`));
  return client.query({ name, text, values });
}

type Body = Record<string, any>;

function readJson(req: IncomingMessage): Promise<Body> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')) as Body);
      } catch (e) {
        reject(e);
      }
    });
    req.on('error', reject);
  });
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

const bytes = (v: unknown) => Buffer.byteLength(JSON.stringify(v), 'utf8');

async function handle(path: string, install: string, b: Body): Promise<[number, unknown]> {
  switch (path) {
    case '/noop':
      return [200, { data: { __typename: 'Query' } }];
    case '/get': {
      const { rows } = await query(BY_KEYS, [tenant, install, b.namespace, JSON.stringify([b.key])]);
      return [200, { record: rows[0] ?? null }];
    }
    case '/records': {
      const keys = b.keys as string[];
      const { rows } = await query(BY_KEYS, [tenant, install, b.namespace, JSON.stringify([...new Set(keys)])]);
      const byKey = new Map(rows.map((r: { key: string }) => [r.key, r]));
      return [200, { records: keys.map((k) => byKey.get(k) ?? null) }];
    }
    case '/list': {
      const first = Number(b.first ?? 25);
      const { rows } =
        b.afterKey === null || b.afterKey === undefined
          ? await query(PAGE_FIRST, [tenant, install, b.namespace, first + 1])
          : await query(PAGE_AFTER, [tenant, install, b.namespace, b.afterKey, first + 1]);
      return [200, { items: rows.slice(0, first), hasNextPage: rows.length > first }];
    }
    case '/put': {
      if (b.ifRevision !== undefined && b.ifRevision !== 0) return [400, { error: 'ifRevision must be absent or 0' }];
      const metadata = b.metadata ?? {};
      const { rows } = await query(b.ifRevision === 0 ? CREATE : UPSERT, [
        tenant,
        install,
        b.namespace,
        b.key,
        JSON.stringify(b.value),
        JSON.stringify(metadata),
        bytes(b.value),
        bytes(metadata),
      ]);
      if (rows.length === 0) return [409, { error: 'key exists', key: b.key }];
      return [200, { record: rows[0] }];
    }
    case '/bulk': {
      const items = (b.items as Body[]).map((i) => ({
        key: i.key,
        value: i.value,
        metadata: i.metadata ?? {},
        value_bytes: bytes(i.value),
        metadata_bytes: bytes(i.metadata ?? {}),
      }));
      const { rows } = await query(BULK, [tenant, install, b.namespace, JSON.stringify(items)]);
      return [200, { records: rows }];
    }
    case '/commit': {
      const puts = (b.operations as Array<{ put: Body }>).map((o) => o.put);
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        const records: unknown[] = [];
        for (const p of puts) {
          const metadata = p.metadata ?? {};
          const { rows } = await clientQuery(client, UPSERT, [tenant, install, p.namespace, p.key, JSON.stringify(p.value), JSON.stringify(metadata), bytes(p.value), bytes(metadata)]);
          records.push(rows[0]);
        }
        await client.query('COMMIT');
        client.release();
        return [200, { records, committed: true }];
      } catch (error) {
        // A connection whose transaction failed is not reused.
        client.release(error instanceof Error ? error : true);
        throw error;
      }
    }
    case '/put-feed': {
      const metadata = b.metadata ?? {};
      const { rows } = await query(PUT_FEED, [tenant, install, b.namespace, b.key, JSON.stringify(b.value), JSON.stringify(metadata), bytes(b.value), bytes(metadata)]);
      if (rows.length === 0) throw new Error('no lock row for the install (write through the gateway first)');
      return [200, { record: rows[0] }];
    }
    case '/changes': {
      const { rows } = await query(CHANGES, [tenant, install, Number(b.after ?? 0), Number(b.first ?? 100)]);
      const items = rows.map((r: Record<string, unknown>) => ({ cursor: String(r.seq), at: r.at, operation: r.operation, namespace: r.namespace, key: r.key, revision: r.revision, actor: r.actor }));
      return [200, { items, nextCursor: items.length > 0 ? items[items.length - 1]!.cursor : String(b.after ?? 0) }];
    }
    case '/increment': {
      const { rows } = await query(INCREMENT, [tenant, install, b.namespace, b.key, String(b.by)]);
      return [200, { record: rows[0] }];
    }
    default:
      return [404, { error: 'not found' }];
  }
}

const server = createServer((req, res) => {
  const path = (req.url ?? '/').split('?')[0]!;
  if (req.method === 'GET' && path === '/healthz') return send(res, 200, { status: 'ok' });
  const install = req.headers['x-install-id'];
  readJson(req)
    .then((body) => handle(path, typeof install === 'string' ? install : defaultInstall, body))
    .then(([status, body]) => send(res, status, body))
    .catch((error: unknown) => send(res, 500, { error: error instanceof Error ? error.message : 'error' }));
});
server.keepAliveTimeout = 65_000;
server.listen(Number(process.env.PORT ?? 4100), process.env.HOST ?? '127.0.0.1');

const stop = () => {
  server.close();
  server.closeAllConnections();
  void pool.end().finally(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
