/**
 * A real browser (Debian's chromium through playwright-core), offline: GraphiQL runs its example
 * query with the pre-filled admin token, and a page on a second origin calls the API with the
 * typed client, allowed when that origin is in STORAGE_CORS_ORIGINS and blocked when it is not.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { build } from 'esbuild';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mintToken } from '../../src/auth/credentials.js';
import { loadConfig } from '../../src/config.js';
import { createApp, type App } from '../../src/http/server.js';
import { createLogger } from '../../src/logger.js';
import { JsonText } from '../../src/storage/json-text.js';
import type { Caller } from '../../src/storage/principal.js';
import { graphiqlOptions } from '../../src/http/graphiql.js';
import { startTestApp } from '../support/app.js';
import { openTestDatabase } from '../support/db.js';

const CHROMIUM = '/usr/bin/chromium';
const available = existsSync(CHROMIUM);
const mustRun = Boolean(process.env.CI);
if (!available && !mustRun) {
  process.stderr.write(`\n!! test/doors/browser.test.ts skipped: ${CHROMIUM} is missing (apt-get install -y chromium). CI runs it.\n\n`);
}

/** The page served from the second origins: the bundled client plus a scenario the test calls. */
const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>iframe SDK</title><script src="/client.js"></script></head>
<body><p id="status">loaded</p>
<script>
  window.runScenario = async function (url, token) {
    var client = StorageClient.createStorageClient({ url: url, token: token });
    var put = await client.put('browser', 'greeting', { hello: location.origin });
    var get = await client.get('browser', 'greeting');
    var pages = [];
    for await (var page of client.list('browser')) pages.push(page);
    var conflict = await client.put('browser', 'greeting', 'x', { ifRevision: 0 });
    return { put: put, get: get, pages: pages, conflict: conflict };
  };
  window.rawFetch = async function (url, token) {
    try {
      var res = await fetch(url + '/graphql', {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: 'Bearer ' + token },
        body: JSON.stringify({ query: '{ install { id } }' }),
      });
      return { fetched: true, status: res.status };
    } catch (e) {
      return { fetched: false, error: String(e) };
    }
  };
</script></body></html>`;

interface PageServer {
  server: Server;
  origin: string;
}

function startPageServer(clientJs: string): Promise<PageServer> {
  const server = createServer((req, res) => {
    if (req.url === '/client.js') {
      res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8' });
      res.end(clientJs);
    } else if (req.url === '/' || req.url === '/index.html') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(PAGE);
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve({ server, origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }));
  });
}

function isLocal(url: string): boolean {
  const { protocol, hostname } = new URL(url);
  return protocol === 'data:' || protocol === 'blob:' || hostname === '127.0.0.1' || hostname === 'localhost';
}

const closeServer = (s: Server) => new Promise<void>((resolve) => s.close(() => resolve()));

describe('GraphiQL without a browser', () => {
  it('starts its editors from the first example tab, whose variables name the install', () => {
    const options = graphiqlOptions({ token: 'demo-token', installId: '00000000-0000-4000-8000-0000000000a1' });
    expect(options.defaultTabs?.[0]?.query).toContain('query ReadRecords($installId: ID!)');
    expect(options.variables).toBe(options.defaultTabs?.[0]?.variables);
    expect(JSON.parse(options.variables ?? '{}')).toEqual({ installId: '00000000-0000-4000-8000-0000000000a1' });
    expect(JSON.parse(String(options.headers))).toEqual({ Authorization: 'Bearer demo-token' });
    expect(options.shouldPersistHeaders).toBe(false);
  });

  it('is one self-contained page at GET /graphql (no script or stylesheet from elsewhere), and off with STORAGE_GRAPHIQL=false', async () => {
    const on = await startTestApp();
    try {
      const res = await fetch(`${on.url}/graphql`, { headers: { accept: 'text/html' } });
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^text\/html/);
      const html = await res.text();
      expect(html).toContain('Extension storage gateway');
      expect(html).not.toMatch(/<script[^>]+src=["']?(https?:)?\/\//i);
      expect(html).not.toMatch(/<link[^>]+href=["']?(https?:)?\/\//i);
    } finally {
      await on.close();
    }
    const off = await startTestApp({ STORAGE_GRAPHIQL: 'false' });
    try {
      const res = await fetch(`${off.url}/graphql`, { headers: { accept: 'text/html' } });
      expect(res.headers.get('content-type') ?? '').not.toMatch(/^text\/html/);
      expect(await res.text()).not.toContain('graphiql');
    } finally {
      await off.close();
    }
  });
});

describe.skipIf(!available && !mustRun)('in a browser (chromium, offline)', () => {
  let app: App;
  let apiUrl: string;
  let disposeDb: () => Promise<void>;
  let allowed: PageServer;
  let blocked: PageServer;
  let browser: Browser;
  /** Every request routed: non-local ones are aborted (and remembered). */
  let offline: BrowserContext;
  /**
   * No routing here: with request interception on, Playwright answers CORS preflights itself
   * (allowing any origin), which would hide the gateway's own answer. Requests are only observed,
   * and --host-resolver-rules keeps the browser off the network.
   */
  let plain: BrowserContext;
  const outside: string[] = [];
  const tenantId = randomUUID();
  const installId = randomUUID();
  const secret = randomBytes(32).toString('hex');
  let adminToken: string;
  let extensionToken: string;
  const admin: Caller = { principal: { kind: 'admin', tenantId, actor: 'browser-test' }, requestId: null };

  beforeAll(async () => {
    const bundle = await build({
      entryPoints: ['client/index.ts'],
      bundle: true,
      format: 'iife',
      globalName: 'StorageClient',
      platform: 'browser',
      target: 'es2020',
      write: false,
      logLevel: 'silent',
    });
    const clientJs = bundle.outputFiles[0]!.text;
    allowed = await startPageServer(clientJs);
    blocked = await startPageServer(clientJs);

    const config = loadConfig({
      NODE_ENV: 'test',
      STORAGE_JWT_SECRET: secret,
      STORAGE_RATE_LIMIT_PER_SECOND: '0',
      STORAGE_CORS_ORIGINS: allowed.origin,
      LOG_LEVEL: 'silent',
    });
    const db = await openTestDatabase();
    disposeDb = db.dispose;
    adminToken = await mintToken(secret, { sub: 'browser-admin', tid: tenantId, role: 'admin' });
    extensionToken = await mintToken(secret, { sub: 'browser-sdk', tid: tenantId, role: 'extension', iid: installId, scope: 'storage:read storage:write' });
    app = createApp({ config, database: db.handle, logger: createLogger('silent'), jwtSecret: secret, graphiqlDemo: { token: adminToken, installId } });
    apiUrl = await app.listen(0, '127.0.0.1');
    await app.storage.upsertInstall(admin, { id: installId, extensionId: 'browser-extension', enabled: true, canRead: true, canWrite: true });
    await app.storage.putRecord(admin, { installId, namespace: 'settings', key: 'theme', value: { mode: 'dark-from-the-server' } });

    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1',
      ],
    });
    offline = await browser.newContext();
    // Offline: anything that is not this machine is refused, and remembered.
    await offline.route('**/*', (route) => {
      const url = route.request().url();
      if (isLocal(url)) return route.continue();
      outside.push(url);
      return route.abort('internetdisconnected');
    });
    plain = await browser.newContext();
    plain.on('request', (request) => {
      if (!isLocal(request.url())) outside.push(request.url());
    });
  }, 180_000);

  afterAll(async () => {
    await offline?.close().catch(() => undefined);
    await plain?.close().catch(() => undefined);
    await browser?.close().catch(() => undefined);
    if (allowed) await closeServer(allowed.server);
    if (blocked) await closeServer(blocked.server);
    await app?.close(2000);
    await disposeDb?.();
  });

  async function openPage(context: BrowserContext, url: string): Promise<Page> {
    const page = await context.newPage();
    await page.goto(url, { waitUntil: 'load' });
    return page;
  }

  it('GraphiQL at /graphql runs the example query with the pre-filled admin token and shows the result', async () => {
    const page = await openPage(offline, `${apiUrl}/graphql`);
    try {
      const execute = page.locator('.graphiql-execute-button');
      await execute.waitFor({ state: 'visible', timeout: 60_000 });
      // Monaco renders spaces as U+00A0.
      const editor = (await page.locator('.graphiql-query-editor').innerText()).replace(/\s+/g, ' ');
      expect(editor).toContain('query ReadRecords');
      let sent = null;
      for (let attempt = 0; attempt < 5 && !sent; attempt++) {
        const request = page
          .waitForRequest((r) => r.url().startsWith(`${apiUrl}/graphql`) && (r.postData() ?? '').includes('ReadRecords'), { timeout: 5000 })
          .catch(() => null);
        await execute.click();
        sent = await request;
      }
      expect(sent, 'GraphiQL sent the query after at most 5 clicks').not.toBeNull();
      const response = (await sent!.response())!;
      expect(response.request().headers().authorization).toBe(`Bearer ${adminToken}`);
      expect(response.request().postDataJSON().variables).toEqual({ installId });
      expect(response.status()).toBe(200);
      const result = page.locator('.graphiql-response');
      await expect.poll(() => result.innerText(), { timeout: 30_000 }).toContain('dark-from-the-server');
      const shown = await result.innerText();
      expect(shown).toContain('"records"');
      expect(shown).not.toContain('"errors"');
    } finally {
      await page.close();
    }
  }, 120_000);

  it('GraphiQL runs the write example of the second tab', async () => {
    const page = await openPage(offline, `${apiUrl}/graphql`);
    try {
      const execute = page.locator('.graphiql-execute-button');
      await execute.waitFor({ state: 'visible', timeout: 60_000 });
      // The tabs sit in a drag-to-reorder list that swallows synthetic pointer clicks; a click event selects.
      await page.locator('.graphiql-tab-button', { hasText: 'WriteRecord' }).dispatchEvent('click');
      await expect.poll(() => page.locator('.graphiql-tab-active').innerText()).toContain('WriteRecord');
      // Right after a tab switch GraphiQL may re-render the execute button and drop a click; click
      // again only while no request left (a sent write must not be sent twice).
      let sent = null;
      for (let attempt = 0; attempt < 5 && !sent; attempt++) {
        const request = page
          .waitForRequest((r) => r.url().startsWith(`${apiUrl}/graphql`) && (r.postData() ?? '').includes('WriteRecord'), { timeout: 5000 })
          .catch(() => null);
        await execute.click();
        sent = await request;
      }
      expect(sent, 'GraphiQL sent the write after at most 5 clicks').not.toBeNull();
      expect((await sent!.response())?.status()).toBe(200);
      await expect.poll(() => page.locator('.graphiql-response').innerText(), { timeout: 30_000 }).toContain('PutRecordSuccess');
      const stored = await app.storage.getRecord(admin, { installId, namespace: 'settings', key: 'theme' });
      expect(stored).toMatchObject({ value: new JsonText('{"mode": "dark"}'), revision: 2 });
    } finally {
      await page.close();
    }
  }, 120_000);

  it('GraphiQL loads nothing from outside this machine (no CDN)', () => {
    expect(outside).toEqual([]);
  });

  it('a page on a listed origin reads and writes with the typed client', async () => {
    const page = await openPage(plain, `${allowed.origin}/`);
    try {
      const out = (await page.evaluate(`window.runScenario(${JSON.stringify(apiUrl)}, ${JSON.stringify(extensionToken)})`)) as any;
      expect(out.put).toMatchObject({ ok: true, record: { namespace: 'browser', key: 'greeting', revision: 1, value: { hello: allowed.origin } } });
      expect(out.get).toMatchObject({ ok: true, record: { value: { hello: allowed.origin }, revision: 1 } });
      expect(out.pages).toEqual([{ ok: true, nextCursor: null, records: [expect.objectContaining({ key: 'greeting' })] }]);
      expect(out.conflict).toMatchObject({ ok: false, error: { code: 'REVISION_MISMATCH', currentRevision: 1 } });
      expect(await page.evaluate(`window.rawFetch(${JSON.stringify(apiUrl)}, ${JSON.stringify(extensionToken)})`)).toEqual({ fetched: true, status: 200 });
    } finally {
      await page.close();
    }
  }, 60_000);

  it('a page on an unlisted origin is blocked by the browser: fetch rejects and nothing is written', async () => {
    const page = await openPage(plain, `${blocked.origin}/`);
    try {
      expect((await app.storage.deleteRecord(admin, { installId, namespace: 'browser', key: 'greeting' })).deleted).toBe(true);
      const raw = (await page.evaluate(`window.rawFetch(${JSON.stringify(apiUrl)}, ${JSON.stringify(extensionToken)})`)) as any;
      expect(raw.fetched).toBe(false);
      expect(raw.error).toMatch(/TypeError/);
      const out = (await page.evaluate(`window.runScenario(${JSON.stringify(apiUrl)}, ${JSON.stringify(extensionToken)})`)) as any;
      expect(out.put).toMatchObject({ ok: false, error: { code: 'NETWORK_ERROR', status: null } });
      expect(out.get).toMatchObject({ ok: false, error: { code: 'NETWORK_ERROR' } });
      // The preflight failed, so the browser never sent the write.
      expect(await app.storage.getRecord(admin, { installId, namespace: 'browser', key: 'greeting' })).toBeNull();
    } finally {
      await page.close();
    }
  }, 60_000);

  it('no request left this machine during the whole run', () => {
    expect(outside).toEqual([]);
  });
});
