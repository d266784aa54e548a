/**
 * Caller-controlled text on its way to the logger: a field never adds more than 1 KiB to a log
 * line (contract, "Cost, fairness and availability"), so a 1 MB `operation` is a 1 KiB one.
 */

/** Bytes one logged field may take, as JSON (quotes and escapes included). */
export const MAX_LOG_FIELD_BYTES = 1024;

const jsonBytes = (s: string) => Buffer.byteLength(JSON.stringify(s));

/** `value` cut so that its JSON text is at most `maxBytes`, saying how much was cut. */
export function clipForLog(value: string, maxBytes = MAX_LOG_FIELD_BYTES): string {
  if (value.length <= maxBytes / 6 || jsonBytes(value) <= maxBytes) return value;
  // Each character costs at most 6 bytes as JSON (\u escapes): shrink until the text and its note fit.
  let cut = value.slice(0, maxBytes);
  for (;;) {
    const last = cut.charCodeAt(cut.length - 1);
    if (last >= 0xd800 && last <= 0xdbff) cut = cut.slice(0, -1);
    const clipped = `${cut}…[${value.length - cut.length} more characters]`;
    if (jsonBytes(clipped) <= maxBytes || cut.length === 0) return clipped;
    cut = cut.slice(0, Math.floor(cut.length * 0.8));
  }
}

/**
 * An error as a plain, clipped object for `logger.error({ err })`: its messages and properties may
 * quote caller input (a database error echoing a value, a parse error quoting a body).
 */
export function errorForLog(error: unknown, depth = 0): unknown {
  if (!(error instanceof Error)) return typeof error === 'string' ? clipForLog(error) : error;
  const message = clipForLog(error.message);
  const out: Record<string, unknown> = { type: error.constructor?.name ?? 'Error', message };
  if (error.stack) {
    // The stack's first line repeats the message: keep the clipped one, then the frames (our code's text).
    const head = `${error.name}: ${error.message}`;
    const stack = error.stack.startsWith(head) ? `${error.name}: ${message}${error.stack.slice(head.length)}` : error.stack;
    out.stack = clipForLog(stack, 4 * MAX_LOG_FIELD_BYTES);
  }
  for (const [k, v] of Object.entries(error)) {
    if (typeof v === 'string') out[k] = clipForLog(v);
    else if (typeof v === 'number' || typeof v === 'boolean') out[k] = v;
  }
  if (error.cause !== undefined && depth < 2) out.cause = errorForLog(error.cause, depth + 1);
  return out;
}
