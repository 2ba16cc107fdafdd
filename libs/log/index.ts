import pino, { type DestinationStream, type Logger } from 'pino';

export type { Logger };

/** Paths pino blanks wherever they appear: credentials, tokens and secrets never reach a log line. */
export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers["proxy-authorization"]',
  'req.headers.cookie',
  'headers.authorization',
  'headers["proxy-authorization"]',
  'headers.cookie',
  'authorization',
  'password',
  '*.password',
  'url.password',
  'token',
  '*.token',
  'access_token',
  '*.access_token',
  'refresh_token',
  '*.refresh_token',
  'secretaccesskey',
  '*.secretaccesskey',
];

/** The process logger: pino JSON on stdout (or `destination`), credentials redacted wherever they appear. */
export function createLogger(level: string, bindings: Record<string, unknown> = {}, destination?: DestinationStream): Logger {
  const options = {
    level,
    base: { pid: process.pid, ...bindings },
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
  };
  return destination ? pino(options, destination) : pino(options);
}
