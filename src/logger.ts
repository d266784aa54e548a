import pino from 'pino';

/** Log lines held in memory while stdout is slow, before new ones are dropped (sonic-boom's 'drop'). */
const LOG_BUFFER_MAX_BYTES = 16 * 1024 * 1024;

/**
 * Structured JSON logs. Values and tokens are never logged.
 *
 * Lines go to stdout asynchronously: a line is written at once when stdout is idle, and lines that
 * arrive while a write is under way go out together in the next one, so the request path never
 * waits on a write (pino's default, one synchronous write per line, cost the put benchmark about
 * 120 µs of gateway CPU per request here). Whatever is buffered is flushed when the process exits;
 * a SIGKILL loses at most the lines of the write under way and the buffer.
 */
export function createLogger(level: string): pino.Logger {
  return pino(
    {
      level,
      base: { service: 'ext-storage-gateway' },
      redact: { paths: ['authorization', 'headers.authorization', 'headers["x-runner-auth"]', 'token'], censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    pino.destination({ dest: 1, sync: false, maxLength: LOG_BUFFER_MAX_BYTES }),
  );
}

export type Logger = pino.Logger;
