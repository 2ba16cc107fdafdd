import pino, { type Logger } from 'pino';

export type { Logger };

/** The process logger: pino JSON on stdout, credentials redacted wherever they appear. */
export function createLogger(level: string, bindings: Record<string, unknown> = {}): Logger {
  return pino({
    level,
    base: { pid: process.pid, ...bindings },
    redact: {
      paths: ['req.headers.authorization', 'req.headers.cookie', 'headers.authorization', 'password', '*.password', 'url.password'],
      censor: '[redacted]',
    },
  });
}
