import pino from 'pino';

/** Log lines held in memory while stdout is slow, before new ones are dropped (sonic-boom's 'drop'). */
const LOG_BUFFER_MAX_BYTES = 16 * 1024 * 1024;
/** Lines are written once this much is buffered (about 20 request lines)... */
const LOG_WRITE_MIN_BYTES = 8 * 1024;
/** ...or at the latest this long after they were logged. */
const LOG_FLUSH_INTERVAL_MS = 200;

/**
 * Structured JSON logs. Values and tokens are never logged.
 *
 * Lines go to stdout asynchronously and in blocks: a write goes out once 8 KiB are buffered, or
 * every 200 ms, so the request path never waits on a write, and a busy gateway makes one write per
 * ~20 lines instead of one per line (pino's default, one synchronous write per line, cost the put
 * benchmark about 120 µs of gateway CPU per request; one asynchronous write per line still cost a
 * thread-pool hop per request). Whatever is buffered is flushed when the process exits; a SIGKILL
 * loses at most the lines of the last 200 ms and of the write under way.
 */
export function createLogger(level: string): pino.Logger {
  const destination = pino.destination({ dest: 1, sync: false, minLength: LOG_WRITE_MIN_BYTES, maxLength: LOG_BUFFER_MAX_BYTES });
  let logged = false;
  setInterval(() => {
    if (!logged) return;
    logged = false;
    // Does nothing while a write is under way: that write takes the rest with it when it completes.
    destination.flush();
  }, LOG_FLUSH_INTERVAL_MS).unref();
  return pino(
    {
      level,
      hooks: {
        logMethod(args, method) {
          logged = true;
          method.apply(this, args);
        },
      },
      base: { service: 'ext-storage-gateway' },
      redact: { paths: ['authorization', 'headers.authorization', 'headers["x-runner-auth"]', 'token'], censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination,
  );
}

export type Logger = pino.Logger;
