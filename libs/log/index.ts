import pino, { type DestinationStream, type Logger } from 'pino';

export type { Logger };

/**
 * Paths pino blanks wherever they appear, so credentials, tokens and secrets never reach a log
 * line: request headers (Authorization, cookies, registry tokens), and secrets of configuration
 * or driver objects logged with an error.
 */
export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["proxy-authorization"]',
  'headers.authorization',
  'headers.cookie',
  'headers["proxy-authorization"]',
  '*.headers.authorization',
  '*.headers.cookie',
  'authorization',
  'cookie',
  'password',
  '*.password',
  'url.password',
  'token',
  '*.token',
  'access_token',
  '*.access_token',
  'refresh_token',
  '*.refresh_token',
  'secretAccessKey',
  '*.secretAccessKey',
  'secretaccesskey',
  '*.secretaccesskey',
  'credentials',
  '*.credentials',
];

/** The process logger: pino JSON on stdout (or `destination`), credentials redacted wherever they appear. */
export function createLogger(level: string, bindings: Record<string, unknown> = {}, destination?: DestinationStream): Logger {
  const options = { level, base: { pid: process.pid, ...bindings }, redact: { paths: REDACTED_PATHS, censor: '[redacted]' } };
  return destination ? pino(options, destination) : pino(options);
}
