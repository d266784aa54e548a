/**
 * The admin export and import doors (contract, "Export and import"): they authenticate, stream,
 * and translate errors; the rules are the core's (src/storage/export.ts, src/storage/import.ts).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Authenticator } from '../auth/credentials.js';
import { credentialHeadersOf } from '../auth/credentials.js';
import { ForbiddenError, mapDatabaseError, StorageError, UnavailableError } from '../storage/errors.js';
import { normalizeId, type Caller } from '../storage/principal.js';
import { ImportRefusedError, type Storage } from '../storage/storage.js';
import { sendJson, STORAGE_ERROR_HTTP } from './respond.js';

export const ADMIN_IO_RE = /^\/api\/admin\/installs\/([^/]+)\/(export|import)$/;

/** Bytes gathered before a write to the socket (lines are small; one write each would cost more). */
const CHUNK_BYTES = 64 * 1024;


export interface AdminIoDeps {
  storage: Storage;
  authenticator: Authenticator;
  requestId: string;
  log: { principal?: string; installId?: string; operation?: string };
  logError(error: unknown): void;
}

/** Writes a chunk; resolves once the socket can take more (back-pressure), or rejects if the client left. */
function write(res: ServerResponse, chunk: string): Promise<void> {
  if (res.destroyed) return Promise.reject(new Error('client went away'));
  if (res.write(chunk)) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const done = (error?: Error) => {
      res.off('drain', onDrain);
      res.off('close', onClose);
      if (error) reject(error);
      else resolve();
    };
    const onDrain = () => done();
    const onClose = () => done(new Error('client went away'));
    res.on('drain', onDrain);
    res.on('close', onClose);
  });
}

export async function handleAdminIo(req: IncomingMessage, res: ServerResponse, path: string, deps: AdminIoDeps): Promise<void> {
  const match = ADMIN_IO_RE.exec(path)!;
  const what = match[2] as 'export' | 'import';
  deps.log.operation = what;
  const fail = (status: number, code: string, message: string, details: unknown = null) => {
    const headers: Record<string, string> = {};
    // An import refused before its body was read: the rest of it is not read either.
    if (what === 'import' && !req.readableEnded) headers.connection = 'close';
    if (status === 401) headers['www-authenticate'] = 'Bearer';
    sendJson(res, status, { error: message, code, details }, headers);
  };
  const method = what === 'export' ? 'GET' : 'POST';
  if (req.method !== method) {
    res.setHeader('allow', method);
    fail(405, 'METHOD_NOT_ALLOWED', `use ${method}`);
    return;
  }
  try {
    let installId: string;
    try {
      installId = normalizeId(decodeURIComponent(match[1]!)) ?? '';
    } catch {
      installId = '';
    }
    const principal = await deps.authenticator.authenticate(credentialHeadersOf(req));
    deps.log.principal = principal.kind;
    if (principal.kind !== 'admin') throw new ForbiddenError(`only admins may ${what} an install`);
    if (!installId) throw new ForbiddenError('no such install in your tenant');
    deps.log.installId = installId;
    const caller: Caller = { principal, requestId: deps.requestId, installs: new Map() };
    if (what === 'export') {
      await streamExport(res, await deps.storage.exportInstall(caller, installId));
      return;
    }
    const mode = new URLSearchParams((req.url ?? '').split('?')[1] ?? '').get('mode') ?? 'merge';
    if (mode !== 'merge' && mode !== 'replace') {
      fail(400, 'VALIDATION_FAILED', 'mode must be merge or replace');
      return;
    }
    sendJson(res, 200, await deps.storage.importInstall(caller, installId, req, mode));
  } catch (error) {
    if (res.headersSent) {
      // A failure in the middle of an export: the file stops without its end line (detectably truncated).
      if (!(error instanceof Error && error.message === 'client went away')) deps.logError(error);
      res.destroy();
      return;
    }
    const mapped = mapDatabaseError(error);
    if (mapped instanceof UnavailableError) {
      fail(503, 'INTERNAL_ERROR', mapped.message);
      return;
    }
    if (mapped instanceof StorageError && mapped.code !== 'INTERNAL') {
      const [status, code] = STORAGE_ERROR_HTTP[mapped.code];
      fail(status, code, mapped.message, mapped instanceof ImportRefusedError ? { line: mapped.line } : null);
      return;
    }
    deps.logError(error);
    fail(500, 'INTERNAL_ERROR', 'internal error');
  }
}

async function streamExport(res: ServerResponse, lines: AsyncGenerator<string, void, undefined>): Promise<void> {
  // The first line before the status: a failure to begin is still an error answer.
  const first = await lines.next();
  res.writeHead(200, { 'content-type': 'application/x-ndjson; charset=utf-8', 'cache-control': 'no-store' });
  let pending = first.done ? '' : first.value;
  try {
    for await (const line of lines) {
      pending += line;
      if (pending.length >= CHUNK_BYTES) {
        await write(res, pending);
        pending = '';
      }
    }
    if (pending) await write(res, pending);
  } finally {
    // Left early (the client went away, an error): the snapshot's transaction is rolled back.
    await lines.return(undefined);
  }
  res.end();
}
