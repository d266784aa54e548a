/** A small GraphQL-over-SSE client for the subscription tests: events as they arrive, parsed. */
export interface SseEvent {
  event: string;
  data: any;
}

export interface SseStream {
  status: number;
  contentType: string | null;
  /** The next event (`next` or `complete`); null when the stream ended. Rejects after `timeoutMs`. */
  next(timeoutMs?: number): Promise<SseEvent | null>;
  /** The next `count` `next` events' payloads. */
  take(count: number, timeoutMs?: number): Promise<any[]>;
  close(): void;
}

export async function subscribe(url: string, query: string, variables: Record<string, unknown>, token: string): Promise<SseStream> {
  const abort = new AbortController();
  const res = await fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'text/event-stream', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
    signal: abort.signal,
  });
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  let ended = false;
  const pending: SseEvent[] = [];

  const parse = () => {
    let i: number;
    while ((i = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, i);
      buffer = buffer.slice(i + 2);
      let event = 'message';
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) continue;
        if (line.startsWith('event:')) event = line.slice(6).trim();
        else if (line.startsWith('data:')) data.push(line.slice(5).trimStart());
      }
      if (event === 'message' && data.length === 0) continue;
      const text = data.join('\n');
      pending.push({ event, data: text ? JSON.parse(text) : null });
    }
  };

  const next = async (timeoutMs = 10_000): Promise<SseEvent | null> => {
    const deadline = Date.now() + timeoutMs;
    while (pending.length === 0) {
      if (ended) return null;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('no SSE event in time');
      let timer: NodeJS.Timeout | undefined;
      const r = await Promise.race([
        reader.read(),
        new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), left))),
      ]).finally(() => clearTimeout(timer));
      if (r === 'timeout') throw new Error('no SSE event in time');
      if (r.done) ended = true;
      else {
        buffer += decoder.decode(r.value, { stream: true });
        parse();
      }
    }
    return pending.shift()!;
  };

  return {
    status: res.status,
    contentType: res.headers.get('content-type'),
    next,
    async take(count, timeoutMs = 10_000) {
      const out: any[] = [];
      while (out.length < count) {
        const e = await next(timeoutMs);
        if (!e) throw new Error(`stream ended after ${out.length} of ${count} events`);
        if (e.event === 'next') out.push(e.data);
      }
      return out;
    },
    close() {
      abort.abort();
      reader.cancel().catch(() => undefined);
    },
  };
}
