import pino from 'pino';

/** Structured JSON logs. Values and tokens are never logged. */
export function createLogger(level: string): pino.Logger {
  return pino({
    level,
    base: { service: 'ext-storage-gateway' },
    redact: { paths: ['authorization', 'headers.authorization', 'headers["x-runner-auth"]', 'token'], censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
  });
}

export type Logger = pino.Logger;
