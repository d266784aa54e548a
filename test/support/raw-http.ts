/**
 * Raw HTTP/1.1 over node:net, for the door tests and the fuzzers: the exact request line
 * (fragments, encodings), any method, any Host (or none), repeated headers, a body sent chunked or
 * withheld to see whether the server answers before reading it.
 */
import net from 'node:net';

export interface RawOptions {
  method?: string;
  /** The request target exactly as sent (may contain `#`, `%`, anything Node's parser accepts). */
  target: string;
  /** Sent in order, repeats kept. Host is added unless `host` says otherwise. */
  headers?: Array<[string, string]>;
  /** The Host header to send; null sends none. Default: the server's host:port. */
  host?: string | null;
  body?: Buffer | string;
  /** Send only the head and this Content-Length, never the body: the answer must come without it. */
  withholdBody?: number;
  /** Send the body with Transfer-Encoding: chunked instead of Content-Length. */
  chunked?: boolean;
  timeoutMs?: number;
}

export interface RawAnswer {
  /** 0 when the server closed without answering. */
  status: number;
  headers: Record<string, string[]>;
  body: Buffer;
  text: string;
  json: any;
  /** Milliseconds from writing the request to the end of the answer. */
  ms: number;
  header(name: string): string | undefined;
}

/** The body of a chunked HTTP/1.1 answer, as sent. */
export function dechunk(body: Buffer): Buffer {
  const parts: Buffer[] = [];
  let at = 0;
  while (at < body.length) {
    const eol = body.indexOf('\r\n', at);
    if (eol < 0) break;
    const size = parseInt(body.subarray(at, eol).toString('latin1'), 16);
    if (!Number.isFinite(size) || size === 0) break;
    parts.push(body.subarray(eol + 2, eol + 2 + size));
    at = eol + 2 + size + 2;
  }
  return Buffer.concat(parts);
}

/** What follows the interim answers (100 Continue to "Expect: 100-continue") that have fully arrived. */
function skipInterim(all: Buffer): Buffer {
  while (/^HTTP\/1\.[01] 1\d\d /.test(all.subarray(0, 16).toString('latin1')) && all.indexOf('\r\n\r\n') >= 0) {
    all = all.subarray(all.indexOf('\r\n\r\n') + 4);
  }
  return all;
}

/** One request on its own connection (Connection: close); resolves with the answer. */
export function raw(baseUrl: string, opts: RawOptions): Promise<RawAnswer> {
  const url = new URL(baseUrl);
  const body = opts.body === undefined ? Buffer.alloc(0) : Buffer.isBuffer(opts.body) ? opts.body : Buffer.from(opts.body, 'utf8');
  const method = opts.method ?? 'GET';
  const lines = [`${method} ${opts.target} HTTP/1.1`];
  const host = opts.host === undefined ? url.host : opts.host;
  if (host !== null) lines.push(`Host: ${host}`);
  for (const [k, v] of opts.headers ?? []) lines.push(`${k}: ${v}`);
  if (opts.withholdBody !== undefined) lines.push(`Content-Length: ${opts.withholdBody}`);
  else if (opts.chunked) lines.push('Transfer-Encoding: chunked');
  else if (body.length > 0 || method === 'POST') lines.push(`Content-Length: ${body.length}`);
  lines.push('Connection: close', '', '');
  const head = Buffer.from(lines.join('\r\n'), 'latin1');
  const chunk = (b: Buffer) => (b.length > 0 ? [Buffer.from(`${b.length.toString(16)}\r\n`), b, Buffer.from('\r\n')] : []);
  const payload = opts.chunked ? Buffer.concat([...chunk(body), Buffer.from('0\r\n\r\n')]) : body;
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(url.port), url.hostname);
    const chunks: Buffer[] = [];
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      const ms = performance.now() - started;
      socket.destroy();
      const all = skipInterim(Buffer.concat(chunks));
      const split = all.indexOf('\r\n\r\n');
      const headers: Record<string, string[]> = {};
      if (split < 0) {
        resolve({ status: 0, headers, body: all, text: all.toString('utf8'), json: undefined, ms, header: () => undefined });
        return;
      }
      const [statusLine, ...headerLines] = all.subarray(0, split).toString('latin1').split('\r\n');
      for (const line of headerLines) {
        const i = line.indexOf(':');
        (headers[line.slice(0, i).trim().toLowerCase()] ??= []).push(line.slice(i + 1).trim());
      }
      let rest: Buffer = all.subarray(split + 4);
      if (headers['transfer-encoding']?.some((v) => v.includes('chunked'))) rest = dechunk(rest);
      // Decoded on first use: a 9 MB page need not be decoded to check its status.
      let text: string | undefined;
      let json: any;
      let parsed = false;
      const answer: RawAnswer = {
        status: Number(statusLine!.split(' ')[1]),
        headers,
        body: rest,
        get text() {
          return (text ??= rest.toString('utf8'));
        },
        get json() {
          if (!parsed) {
            parsed = true;
            try {
              json = JSON.parse(answer.text);
            } catch {
              json = undefined;
            }
          }
          return json;
        },
        ms,
        header: (name) => headers[name.toLowerCase()]?.[0],
      };
      resolve(answer);
    };
    const timer = setTimeout(() => {
      if (done) return;
      done = true;
      socket.destroy();
      reject(new Error(`no answer within ${opts.timeoutMs ?? 20_000} ms to ${method} ${opts.target}`));
    }, opts.timeoutMs ?? 20_000);
    let received = 0;
    /** Bytes of the whole exchange (interim answers, head, body) once the final head has arrived, else -1. */
    let expected = -1;
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      received += c.length;
      // A complete answer with a Content-Length ends the exchange even if the server keeps the socket.
      if (expected < 0) {
        const whole = Buffer.concat(chunks);
        const all = skipInterim(whole);
        const split = all.indexOf('\r\n\r\n');
        if (split < 0) return;
        const m = /\r\ncontent-length:\s*(\d+)/i.exec(all.subarray(0, split).toString('latin1'));
        const noBody = method === 'HEAD' || / (204|304) /.test(all.subarray(0, 16).toString('latin1'));
        const interim = whole.length - all.length;
        if (noBody) expected = interim + split + 4;
        else if (m) expected = interim + split + 4 + Number(m[1]);
        else return;
      }
      if (received >= expected) finish();
    });
    socket.on('end', finish);
    socket.on('close', finish);
    // The server may answer (413, 400) and close before reading everything: not our failure.
    socket.on('error', () => finish());
    socket.write(opts.withholdBody !== undefined ? head : Buffer.concat([head, payload]));
  });
}

/** The media type of an answer, without parameters. */
export function mediaTypeOf(res: RawAnswer): string {
  return (res.header('content-type') ?? '').split(';')[0]!.trim();
}
