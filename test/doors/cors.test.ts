/**
 * CORS on /graphql (contract, STORAGE_CORS_ORIGINS): listed origins get their own origin back with
 * `vary: Origin`, preflights allow Authorization and Content-Type, never `*`, never credentials;
 * other origins get no CORS headers at all.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';
import { startTestApp, type TestApp, type TestInstall } from '../support/app.js';

const LISTED = 'https://host.example.com';
const ALSO_LISTED = 'http://127.0.0.1:5173';
const UNLISTED = 'https://evil.example.net';

let t: TestApp;
let install: TestInstall;
beforeAll(async () => {
  t = await startTestApp({ STORAGE_CORS_ORIGINS: `${LISTED}, ${ALSO_LISTED}` });
  install = await t.createInstall();
});
afterAll(async () => {
  await t?.close();
});

function corsHeaderNames(headers: Headers): string[] {
  const names: string[] = [];
  headers.forEach((_, name) => {
    if (name.toLowerCase().startsWith('access-control-')) names.push(name.toLowerCase());
  });
  return names.sort();
}

function preflight(origin: string, requestHeaders = 'authorization, content-type'): Promise<Response> {
  return fetch(`${t.url}/graphql`, {
    method: 'OPTIONS',
    headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': requestHeaders },
  });
}

async function post(origin: string | null, token?: string): Promise<Response> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (origin) headers.origin = origin;
  if (token) headers.authorization = `Bearer ${token}`;
  return fetch(`${t.url}/graphql`, { method: 'POST', headers, body: JSON.stringify({ query: '{ install { id } }' }) });
}

function allowedList(value: string | null): string[] {
  return (value ?? '').split(',').map((s) => s.trim().toLowerCase()).filter(Boolean);
}

describe('CORS preflight', () => {
  it('answers a listed origin with 204, that origin, Authorization and Content-Type allowed, and no credentials', async () => {
    const res = await preflight(LISTED);
    expect(res.status).toBe(204);
    expect(res.headers.get('access-control-allow-origin')).toBe(LISTED);
    expect(res.headers.get('vary') ?? '').toMatch(/\bOrigin\b/i);
    expect(allowedList(res.headers.get('access-control-allow-headers'))).toEqual(expect.arrayContaining(['authorization', 'content-type']));
    expect(allowedList(res.headers.get('access-control-allow-methods'))).toEqual(expect.arrayContaining(['post']));
    expect(res.headers.get('access-control-allow-credentials')).toBeNull();
    expect(await res.text()).toBe('');
  });

  it('answers each listed origin with itself, not with the first one in the list', async () => {
    const res = await preflight(ALSO_LISTED);
    expect(res.status).toBe(204);
    expect(res.headers.get('access-control-allow-origin')).toBe(ALSO_LISTED);
  });

  it('gives an unlisted origin no CORS headers at all', async () => {
    const res = await preflight(UNLISTED);
    expect(corsHeaderNames(res.headers)).toEqual([]);
  });

  it('treats an origin that only resembles a listed one as unlisted', async () => {
    for (const origin of [`${LISTED}.evil.net`, 'http://host.example.com', `${LISTED}:443`, LISTED.toUpperCase(), 'null']) {
      const res = await preflight(origin);
      expect(corsHeaderNames(res.headers), origin).toEqual([]);
    }
  });

  it('never answers with a wildcard, whatever headers the preflight asks for', async () => {
    for (const origin of [LISTED, UNLISTED]) {
      const res = await preflight(origin, 'authorization, content-type, x-evil');
      expect(res.headers.get('access-control-allow-origin')).not.toBe('*');
      expect(res.headers.get('access-control-allow-headers') ?? '').not.toContain('*');
      expect(res.headers.get('access-control-allow-methods') ?? '').not.toContain('*');
    }
  });
});

describe('CORS on actual requests', () => {
  it('returns a listed origin on a POST, with vary: Origin and without credentials', async () => {
    const res = await post(LISTED, await install.token());
    expect(res.status).toBe(200);
    expect((await res.json()).data.install.id).toBe(install.id);
    expect(res.headers.get('access-control-allow-origin')).toBe(LISTED);
    expect(res.headers.get('vary') ?? '').toMatch(/\bOrigin\b/i);
    expect(res.headers.get('access-control-allow-credentials')).toBeNull();
  });

  it('gives an unlisted origin no CORS headers on a POST (the browser then hides the answer)', async () => {
    const res = await post(UNLISTED, await install.token());
    expect(corsHeaderNames(res.headers)).toEqual([]);
  });

  it('gives a request without Origin no CORS headers', async () => {
    const res = await post(null, await install.token());
    expect(res.status).toBe(200);
    expect(corsHeaderNames(res.headers)).toEqual([]);
  });

  it('lets a listed origin read a 401, so the SDK can tell an expired token from a network error', async () => {
    const res = await post(LISTED);
    expect(res.status).toBe(401);
    expect(res.headers.get('access-control-allow-origin')).toBe(LISTED);
    expect(res.headers.get('access-control-allow-credentials')).toBeNull();
  });

  it('gives an unlisted origin no CORS headers on a 401 either', async () => {
    const res = await post(UNLISTED);
    expect(res.status).toBe(401);
    expect(corsHeaderNames(res.headers)).toEqual([]);
  });

  it('answers a GET query from a listed origin with that origin', async () => {
    const res = await fetch(`${t.url}/graphql?query=${encodeURIComponent('{ install { id } }')}`, {
      headers: { origin: LISTED, authorization: `Bearer ${await install.token()}`, accept: 'application/json' },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('access-control-allow-origin')).toBe(LISTED);
  });

  it('does not open the Runner door to browsers: no CORS headers on the Runner path', async () => {
    const res = await fetch(`${t.url}/api/internal/ext-storage/install/${install.id}`, {
      method: 'OPTIONS',
      headers: { origin: LISTED, 'access-control-request-method': 'POST' },
    });
    expect(corsHeaderNames(res.headers)).toEqual([]);
  });
});

describe('CORS configuration', () => {
  it('without STORAGE_CORS_ORIGINS, no origin gets CORS headers', async () => {
    const closed = await startTestApp();
    try {
      const install2 = await closed.createInstall();
      const pre = await fetch(`${closed.url}/graphql`, {
        method: 'OPTIONS',
        headers: { origin: LISTED, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization' },
      });
      expect(corsHeaderNames(pre.headers)).toEqual([]);
      const res = await fetch(`${closed.url}/graphql`, {
        method: 'POST',
        headers: { origin: LISTED, 'content-type': 'application/json', authorization: `Bearer ${await install2.token()}` },
        body: JSON.stringify({ query: '{ install { id } }' }),
      });
      expect(res.status).toBe(200);
      expect(corsHeaderNames(res.headers)).toEqual([]);
    } finally {
      await closed.close();
    }
  });

  it('refuses a wildcard or a non-origin in STORAGE_CORS_ORIGINS at start', () => {
    for (const value of ['*', 'https://a.example.com,*', 'https://a.example.com/path', 'a.example.com']) {
      expect(() => loadConfig({ NODE_ENV: 'test', STORAGE_JWT_SECRET: 'x'.repeat(32), STORAGE_CORS_ORIGINS: value }), value).toThrow(ConfigError);
    }
  });
});
