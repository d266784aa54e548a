import { isUtf8 } from 'node:buffer';
import type { IncomingMessage } from 'node:http';

export class BodyTooLargeError extends Error {}

/** Reads a request body, refusing (before buffering it all) one above `limit` bytes. */
export async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) throw new BodyTooLargeError();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new BodyTooLargeError();
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/**
 * JSON text must be UTF-8 (RFC 8259 §8.1). Decoding invalid bytes leniently would store U+FFFD in
 * place of what the caller sent, so a body that is not UTF-8 is refused instead of repaired.
 */
export function isUtf8Body(body: Buffer): boolean {
  return isUtf8(body);
}
