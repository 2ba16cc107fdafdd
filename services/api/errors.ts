import { STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyReply } from 'fastify';
import { RegistryError, type ErrorCode, type ErrorOptions, type ErrorReason } from '../../libs/oci/index.js';

/*
 * The one place errors become HTTP: a status from the code (the OCI specification's table), or
 * from the reason where the domain gave one, and headers from the facts the error carries.
 */

const CODE_STATUS: Record<ErrorCode, number> = {
  BLOB_UNKNOWN: 404,
  BLOB_UPLOAD_INVALID: 400,
  BLOB_UPLOAD_UNKNOWN: 404,
  DIGEST_INVALID: 400,
  MANIFEST_BLOB_UNKNOWN: 400,
  MANIFEST_INVALID: 400,
  MANIFEST_UNKNOWN: 404,
  NAME_INVALID: 400,
  NAME_UNKNOWN: 404,
  SIZE_INVALID: 400,
  TAG_INVALID: 400,
  UNAUTHORIZED: 401,
  DENIED: 403,
  UNSUPPORTED: 405,
  TOOMANYREQUESTS: 429,
  RANGE_INVALID: 416,
  PAYLOAD_TOO_LARGE: 413,
  PAGINATION_NUMBER_INVALID: 400,
  UNAVAILABLE: 503,
  UNKNOWN: 500,
};

const REASON_STATUS: Record<ErrorReason, number> = {
  'too-large': 413,
  'out-of-range': 416,
  'bad-parameter': 400,
};

/** An error the HTTP layer makes itself, with what only HTTP says: a status of its own (404 for no endpoint, 405) and headers (Allow, WWW-Authenticate). */
export class HttpError extends RegistryError {
  readonly status: number | undefined;
  readonly headers: Record<string, string>;

  constructor(code: ErrorCode, message: string, opts: ErrorOptions & { status?: number; headers?: Record<string, string> } = {}) {
    super(code, message, opts);
    this.status = opts.status;
    this.headers = opts.headers ?? {};
  }
}

export function statusOf(err: RegistryError): number {
  if (err instanceof HttpError && err.status !== undefined) return err.status;
  return err.reason ? REASON_STATUS[err.reason] : CODE_STATUS[err.code];
}

/** The Range header value for an upload session holding `offset` bytes: Distribution's `0-<last byte>`. */
export function uploadRange(offset: number): string {
  return `0-${Math.max(offset - 1, 0)}`;
}

function headersOf(err: RegistryError): Record<string, string> {
  const headers: Record<string, string> = {};
  if (err.uploadOffset !== undefined) headers.Range = uploadRange(err.uploadOffset);
  if (err.retryAfterSeconds !== undefined) headers['Retry-After'] = String(err.retryAfterSeconds);
  return err instanceof HttpError ? { ...headers, ...err.headers } : headers;
}

export function sendError(reply: FastifyReply, err: RegistryError): FastifyReply {
  for (const [k, v] of Object.entries(headersOf(err))) reply.header(k, v);
  return reply.code(statusOf(err)).type('application/json').send(err.toJSON());
}

/** Turns anything thrown into OCI error JSON; only what is not the client's fault is a 5xx. */
export function toRegistryError(err: unknown): RegistryError {
  if (err instanceof RegistryError) return err;
  const status = (err as { statusCode?: number }).statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    const code = status === 413 ? 'SIZE_INVALID' : status === 415 ? 'MANIFEST_INVALID' : 'UNSUPPORTED';
    return new HttpError(code, (err as Error).message, { status });
  }
  return new RegistryError('UNKNOWN', 'internal error');
}

/**
 * Requests Node's HTTP parser rejects never reach a handler; they still get OCI error JSON.
 * A body cut short mid-request is the exception: its handler is running and answers itself.
 */
export function answerClientError(err: Error & { code?: string }, socket: Socket): void {
  if (err.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  const inFlight = (socket as Socket & { _httpMessage?: { req?: IncomingMessage } | null })._httpMessage?.req;
  if (err.code === 'HPE_INVALID_EOF_STATE' && inFlight) {
    // The client half-closed mid-body. Node leaves the request stream waiting; fail it, so the
    // handler rolls back and answers on the still-writable socket.
    if (inFlight.listenerCount('error') > 0) inFlight.emit('error', Object.assign(new Error('request body ended before it was complete'), { code: 'ECONNRESET' }));
    else socket.destroy();
    return;
  }
  const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
  const code = /CONTENT_LENGTH|CHUNK|EOF/.test(err.code ?? '') ? 'SIZE_INVALID' : 'UNSUPPORTED';
  const body = JSON.stringify(new RegistryError(code, 'malformed HTTP request', { detail: { reason: err.code ?? err.message } }).toJSON());
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
      `Docker-Distribution-API-Version: registry/2.0\r\nConnection: close\r\n\r\n${body}`,
  );
}
