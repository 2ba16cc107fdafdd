import pino, { type DestinationStream, type Logger } from 'pino';

export type { Logger };

/**
 * Where credentials could show up in a log object: request headers (Authorization, cookies,
 * registry tokens), and secrets of configuration or driver objects logged with an error.
 */
const REDACT = [
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
  'secretAccessKey',
  '*.secretAccessKey',
  '*.secretaccesskey',
  'credentials',
  '*.credentials',
];

/** The process logger: pino JSON on stdout (or `destination`), credentials redacted wherever they appear. */
export function createLogger(level: string, bindings: Record<string, unknown> = {}, destination?: DestinationStream): Logger {
  const options = { level, base: { pid: process.pid, ...bindings }, redact: { paths: REDACT, censor: '[redacted]' } };
  return destination ? pino(options, destination) : pino(options);
}
