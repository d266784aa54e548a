/**
 * Issue 13 (contract, "Errors and content types"): every refusal before execution (401, 403, 405,
 * 413, 415, 429 at admission and priced inside Yoga, 503) answers in the media type a GraphQL
 * answer to the same Accept header has, q-values honoured, with a GraphQL-shaped body; a request
 * accepting only text/event-stream gets application/json. Executed answers use the same choice
 * (Yoga's own ignores q-values), on the fast path and through yoga.fetch alike.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { graphqlMediaType, refusalMediaType } from '../../src/http/respond.js';
import { startTestApp, type TestApp, type TestInstall } from '../support/app.js';
import { mediaTypeOf, raw, type RawAnswer } from '../support/raw-http.js';

const GQL = 'application/graphql-response+json';
const JSON_TYPE = 'application/json';
const SSE = 'text/event-stream';

/** The brief's Accept headers (null: none sent) and the media type a refusal must have. */
const ACCEPTS: Array<[string | null, string]> = [
  [GQL, GQL],
  [JSON_TYPE, JSON_TYPE],
  [`${GQL};q=0.5, ${JSON_TYPE};q=0.9`, JSON_TYPE],
  ['*/*', JSON_TYPE],
  [null, JSON_TYPE],
  [SSE, JSON_TYPE],
  [`${JSON_TYPE};q=0.5, ${GQL}`, GQL],
  [`${GQL}, ${JSON_TYPE}`, GQL],
];

/** More headers for the agreement between executed answers and refusals. */
const MORE_ACCEPTS: string[] = [
  `${JSON_TYPE}, ${GQL}`,
  `${GQL};q=0.9, ${JSON_TYPE};q=0.4`,
  `${GQL};q=0.4, ${JSON_TYPE};q=0.6`,
  `application/*;q=0.5, ${GQL};q=0.9`,
  `${GQL};q=0.5, */*;q=0.6`,
  `${GQL};q=0, */*`,
  `${GQL};charset=latin1, ${JSON_TYPE}`,
  `${GQL};charset="UTF-8"`,
  `${SSE}, ${GQL};q=0.2`,
  `${SSE}, ${JSON_TYPE};q=0.2, ${GQL};q=0.1`,
  ` ${GQL} ; q=0.8 ,${JSON_TYPE} ; q=0.7`,
  `text/html, ${GQL};q=0.9, */*;q=0.8`,
];

const headerOf = (accept: string | null): Array<[string, string]> => (accept === null ? [] : [['Accept', accept]]);
const JSON_BODY: [string, string] = ['Content-Type', 'application/json'];
const TYPENAME = '{"query":"{ __typename }"}';

function expectRefusal(res: RawAnswer, status: number, code: string, accept: string | null, type: string): void {
  const what = `${status} ${code} with Accept ${accept}: ${res.status} ${res.header('content-type')} ${res.text.slice(0, 200)}`;
  expect(res.status, what).toBe(status);
  expect(mediaTypeOf(res), what).toBe(type);
  expect(res.header('content-type'), what).toMatch(/;\s*charset=utf-8$/i);
  expect(res.json, what).toEqual({ errors: [{ message: expect.any(String), extensions: expect.objectContaining({ code }) }] });
  expect(res.json.errors[0].message.length, what).toBeGreaterThan(0);
}

let app: TestApp;
let install: TestInstall;
let token: string;

beforeAll(async () => {
  app = await startTestApp({ STORAGE_GRAPHIQL: 'false', STORAGE_MAX_BODY_BYTES: '2048' });
  install = await app.createInstall();
  token = await install.token();
});
afterAll(async () => {
  await app?.close();
});

describe('the negotiation (negotiator)', () => {
  it('picks the type by q, then specificity, then order; application/json on a tie, with no header or nothing acceptable', () => {
    for (const [accept, type] of ACCEPTS) expect(refusalMediaType(accept ?? undefined), String(accept)).toBe(type);
    expect(graphqlMediaType(SSE)).toBeNull();
    expect(graphqlMediaType(`${GQL};q=0, */*`)).toBe(JSON_TYPE);
    expect(graphqlMediaType(`${GQL};q=0.4, ${JSON_TYPE};q=0.6`)).toBe(JSON_TYPE);
    expect(graphqlMediaType(`application/*;q=0.5, ${GQL};q=0.9`)).toBe(GQL);
    expect(graphqlMediaType(`${GQL};charset=latin1, ${JSON_TYPE}`)).toBe(JSON_TYPE);
    for (const odd of ['', ',,,', 'garbage', ';;', `${JSON_TYPE};q=abc`, '"', 'a/b;c="', 'x'.repeat(16_000)]) expect(refusalMediaType(odd), odd).toBe(JSON_TYPE);
  });
});

describe('refusals before execution follow Accept', () => {
  it('401 UNAUTHENTICATED (WWW-Authenticate kept)', async () => {
    for (const [accept, type] of ACCEPTS) {
      const res = await raw(app.url, { method: 'POST', target: '/graphql', headers: [JSON_BODY, ...headerOf(accept)], body: TYPENAME });
      expectRefusal(res, 401, 'UNAUTHENTICATED', accept, type);
      expect(res.header('www-authenticate')).toBe('Bearer');
      expect(res.header('vary')).toMatch(/Accept/);
    }
  });

  it('403 FORBIDDEN (a disabled install)', async () => {
    const disabled = await app.createInstall({ enabled: false });
    const tok = await disabled.token();
    for (const [accept, type] of ACCEPTS) {
      const res = await raw(app.url, { method: 'POST', target: '/graphql', headers: [JSON_BODY, ['Authorization', `Bearer ${tok}`], ...headerOf(accept)], body: TYPENAME });
      expectRefusal(res, 403, 'FORBIDDEN', accept, type);
    }
  });

  it('405 METHOD_NOT_ALLOWED (Allow kept)', async () => {
    for (const [accept, type] of ACCEPTS) {
      const res = await raw(app.url, { method: 'PUT', target: '/graphql', headers: [JSON_BODY, ['Authorization', `Bearer ${token}`], ...headerOf(accept)], body: TYPENAME });
      expectRefusal(res, 405, 'METHOD_NOT_ALLOWED', accept, type);
      expect(res.header('allow')).toBe('GET, POST');
    }
  });

  it('413 PAYLOAD_TOO_LARGE (a body sent, and one announced but withheld)', async () => {
    const big = JSON.stringify({ query: '{ __typename }', variables: { pad: 'x'.repeat(4096) } });
    for (const [accept, type] of ACCEPTS) {
      const sent = await raw(app.url, { method: 'POST', target: '/graphql', headers: [JSON_BODY, ['Authorization', `Bearer ${token}`], ...headerOf(accept)], body: big });
      expectRefusal(sent, 413, 'PAYLOAD_TOO_LARGE', accept, type);
      const withheld = await raw(app.url, { method: 'POST', target: '/graphql', headers: [JSON_BODY, ['Authorization', `Bearer ${token}`], ...headerOf(accept)], withholdBody: 100_000 });
      expectRefusal(withheld, 413, 'PAYLOAD_TOO_LARGE', accept, type);
    }
  });

  it('415 UNSUPPORTED_MEDIA_TYPE', async () => {
    for (const [accept, type] of ACCEPTS) {
      const res = await raw(app.url, { method: 'POST', target: '/graphql', headers: [['Content-Type', 'text/plain'], ['Authorization', `Bearer ${token}`], ...headerOf(accept)], body: TYPENAME });
      expectRefusal(res, 415, 'UNSUPPORTED_MEDIA_TYPE', accept, type);
    }
  });

  it('429 RATE_LIMITED at admission and priced inside Yoga (Retry-After kept)', async () => {
    const limited = await startTestApp({ STORAGE_RATE_LIMIT_PER_SECOND: '1', STORAGE_RATE_LIMIT_BURST: '5', STORAGE_GRAPHIQL: 'false' });
    try {
      const inst = await limited.createInstall();
      const auth: [string, string] = ['Authorization', `Bearer ${await inst.token()}`];
      // 11 units (one statement, one per ten records), more than the burst: it takes the whole bucket.
      const costly = JSON.stringify({ query: 'query($k: [String!]!) { records(namespace: "n", keys: $k) { key } }', variables: { k: Array.from({ length: 100 }, (_, i) => `k${i}`) } });
      const send = (accept: string | null, body = TYPENAME) => raw(limited.url, { method: 'POST', target: '/graphql', headers: [JSON_BODY, auth, ...headerOf(accept)], body });
      await new Promise((r) => setTimeout(r, 1100));
      for (const [accept, type] of ACCEPTS) {
        // Admission: the bucket is empty after the costly request (whatever it answered).
        await send(null, costly);
        const admission = await send(accept);
        expectRefusal(admission, 429, 'RATE_LIMITED', accept, type);
        expect(admission.header('retry-after')).toMatch(/^[1-9]\d*$/);
        // Priced: a second later the bucket pays admission but not the price (raised in Yoga, before execution).
        await new Promise((r) => setTimeout(r, 1100));
        const priced = await send(accept, costly);
        expectRefusal(priced, 429, 'RATE_LIMITED', accept, type);
        expect(priced.json.errors[0].extensions.retryAfterSeconds, 'the priced refusal (it carries retryAfterSeconds)').toBeGreaterThan(0);
        expect(priced.header('retry-after')).toMatch(/^[1-9]\d*$/);
      }
    } finally {
      await limited.close();
    }
  }, 60_000);

  it('503 UNAVAILABLE (a request racing the shutdown on a kept-alive connection)', async () => {
    const closing = await startTestApp({ STORAGE_GRAPHIQL: 'false' });
    const url = new URL(closing.url);
    // One connection per Accept header, each with a request begun (so not idle when the server closes).
    const sockets = await Promise.all(
      ACCEPTS.map(
        () =>
          new Promise<net.Socket>((resolve, reject) => {
            const s = net.connect(Number(url.port), url.hostname, () => resolve(s));
            s.on('error', reject);
          }),
      ),
    );
    const answers = sockets.map(
      (s) =>
        new Promise<string>((resolve) => {
          const chunks: Buffer[] = [];
          s.on('data', (c: Buffer) => chunks.push(c));
          s.on('close', () => resolve(Buffer.concat(chunks).toString('utf8')));
          s.on('error', () => {});
        }),
    );
    sockets.forEach((s) => s.write(`POST /graphql HTTP/1.1\r\nHost: ${url.host}\r\n`));
    await new Promise((r) => setTimeout(r, 100));
    const closed = closing.app.close(5000);
    await new Promise((r) => setTimeout(r, 100));
    sockets.forEach((s, i) => {
      const accept = ACCEPTS[i]![0];
      s.write(`Content-Type: application/json\r\n${accept === null ? '' : `Accept: ${accept}\r\n`}Content-Length: ${TYPENAME.length}\r\n\r\n${TYPENAME}`);
    });
    const texts = await Promise.all(answers);
    await closed;
    await closing.database.dispose();
    texts.forEach((text, i) => {
      const [accept, type] = ACCEPTS[i]!;
      const [head = '', body = ''] = text.split('\r\n\r\n');
      const what = `503 with Accept ${accept}: ${text.slice(0, 300)}`;
      expect(head, what).toMatch(/^HTTP\/1\.1 503 /);
      expect(/\r\ncontent-type: ([^;\r]+); charset=utf-8/i.exec(head)?.[1], what).toBe(type);
      expect(JSON.parse(body), what).toEqual({ errors: [{ message: expect.any(String), extensions: { code: 'UNAVAILABLE' } }] });
    });
  });
});

describe('an executed answer and a refusal agree on the media type', () => {
  /** Media type of `{ __typename }` executed on the fast path (POST), through yoga.fetch (GET), and refused (401). */
  async function threeWays(accept: string | null): Promise<{ fast: RawAnswer; yoga: RawAnswer; refused: RawAnswer }> {
    const auth: [string, string] = ['Authorization', `Bearer ${token}`];
    const [fast, yoga, refused] = await Promise.all([
      raw(app.url, { method: 'POST', target: '/graphql', headers: [JSON_BODY, auth, ...headerOf(accept)], body: TYPENAME }),
      raw(app.url, { method: 'GET', target: `/graphql?query=${encodeURIComponent('{ __typename }')}`, headers: [auth, ...headerOf(accept)] }),
      raw(app.url, { method: 'POST', target: '/graphql', headers: [JSON_BODY, ...headerOf(accept)], body: TYPENAME }),
    ]);
    return { fast, yoga, refused };
  }

  it('for every Accept header a JSON answer can satisfy (q-values honoured on both)', async () => {
    const headers = [...ACCEPTS.map(([a]) => a).filter((a) => a !== SSE), ...MORE_ACCEPTS];
    for (const accept of headers) {
      const { fast, yoga, refused } = await threeWays(accept);
      const what = `Accept ${accept}`;
      expect(fast.status, what).toBe(200);
      expect(yoga.status, what).toBe(200);
      expect(fast.json, what).toEqual({ data: { __typename: 'Query' } });
      expect(yoga.json, what).toEqual({ data: { __typename: 'Query' } });
      expect(refused.status, what).toBe(401);
      expect(mediaTypeOf(fast), what).toBe(refusalMediaType(accept ?? undefined));
      expect(mediaTypeOf(yoga), what).toBe(mediaTypeOf(fast));
      expect(mediaTypeOf(refused), what).toBe(mediaTypeOf(fast));
    }
  });

  it('q-values now decide executed answers too (Yoga alone took the first listed range)', async () => {
    const { fast, yoga } = await threeWays(`${GQL};q=0.5, ${JSON_TYPE};q=0.9`);
    expect([mediaTypeOf(fast), mediaTypeOf(yoga)]).toEqual([JSON_TYPE, JSON_TYPE]);
    const reversed = await threeWays(`${JSON_TYPE};q=0.5, ${GQL}`);
    expect([mediaTypeOf(reversed.fast), mediaTypeOf(reversed.yoga)]).toEqual([GQL, GQL]);
  });

  it('only text/event-stream: the query is answered as a stream, its refusal as application/json', async () => {
    const { fast, yoga, refused } = await threeWays(SSE);
    expect(mediaTypeOf(fast)).toBe(SSE);
    expect(mediaTypeOf(yoga)).toBe(SSE);
    expect(fast.text).toContain('"__typename":"Query"');
    expect(mediaTypeOf(refused)).toBe(JSON_TYPE);
    expect(refused.json.errors[0].extensions.code).toBe('UNAUTHENTICATED');
  });

  it('a request error (validation) follows the same choice', async () => {
    for (const [accept, type] of ACCEPTS.filter(([a]) => a !== SSE)) {
      const res = await raw(app.url, { method: 'POST', target: '/graphql', headers: [JSON_BODY, ['Authorization', `Bearer ${token}`], ...headerOf(accept)], body: '{"query":"{ nope }"}' });
      expect(res.status, String(accept)).toBe(400);
      expect(mediaTypeOf(res), String(accept)).toBe(type);
    }
  });
});
