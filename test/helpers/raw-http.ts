import { connect, type Socket } from 'node:net';

/**
 * HTTP/1.1 over a bare socket, for requests fetch refuses to make: a Content-Length that lies,
 * a body cut short by the client hanging up, a body the server answers before reading.
 */

export interface RawResponse {
  status: number;
  /** Header names lower-cased; repeated headers joined with ", ". */
  headers: Record<string, string>;
  body: Buffer;
}

export interface RawRequest {
  /** Absolute URL: http://host:port/path?query */
  url: string;
  method: string;
  /** Sent exactly as given (plus Host when absent): nothing is computed from the body. */
  headers?: Record<string, string>;
  /** Body bytes, written after the headers in the given pieces. With `chunked`, each piece becomes one chunk. */
  body?: Buffer | Buffer[];
  /** Frame the body with Transfer-Encoding: chunked (adds the header and the final 0-length chunk). */
  chunked?: boolean;
  /**
   * What to do once the body is written:
   * - 'wait' (default): wait for the response;
   * - 'end': half-close the socket (FIN) without sending the rest of the body, then wait for the close;
   * - 'destroy': reset the socket at once.
   */
  after?: 'wait' | 'end' | 'destroy';
  /** Awaited after the body is written and before `after` is acted on (e.g. until the server has seen the bytes). */
  beforeHangUp?: () => Promise<void>;
  /** Awaited before each body piece after the first: a slow client. */
  pace?: () => Promise<void>;
  /** Gives up (destroying the socket) after this long; default 30 s. */
  timeoutMs?: number;
}

export interface RawResult {
  /** The response, when a complete one arrived. */
  response: RawResponse | undefined;
  /** A socket error seen while writing or reading (EPIPE, ECONNRESET), if any. */
  socketError: Error | undefined;
}

/** Parses one HTTP/1.1 response from `buf`; undefined while it is incomplete (unless `eof`). */
function parseResponse(buf: Buffer, method: string, eof: boolean): RawResponse | undefined {
  let start = 0;
  for (;;) {
    const end = buf.indexOf('\r\n\r\n', start);
    if (end === -1) return undefined;
    const lines = buf.subarray(start, end).toString('latin1').split('\r\n');
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '')?.[1]);
    if (!Number.isInteger(status)) throw new Error(`not an HTTP response: ${JSON.stringify(lines[0])}`);
    const headers: Record<string, string> = {};
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      if (colon === -1) continue;
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
    }
    const bodyStart = end + 4;
    if (status >= 100 && status < 200) {
      start = bodyStart; // an interim response (100 Continue): the real one follows
      continue;
    }
    if (method === 'HEAD' || status === 204 || status === 304) return { status, headers, body: Buffer.alloc(0) };
    if (headers['transfer-encoding']?.toLowerCase().includes('chunked')) {
      const parts: Buffer[] = [];
      let at = bodyStart;
      for (;;) {
        const lineEnd = buf.indexOf('\r\n', at);
        if (lineEnd === -1) return undefined;
        const size = parseInt(buf.subarray(at, lineEnd).toString('latin1'), 16);
        if (Number.isNaN(size)) throw new Error('bad chunk size in response');
        if (size === 0) {
          if (buf.length < lineEnd + 4) return undefined; // "0\r\n\r\n" (trailers are not expected)
          return { status, headers, body: Buffer.concat(parts) };
        }
        if (buf.length < lineEnd + 2 + size + 2) return undefined;
        parts.push(buf.subarray(lineEnd + 2, lineEnd + 2 + size));
        at = lineEnd + 2 + size + 2;
      }
    }
    const length = headers['content-length'];
    if (length !== undefined) {
      const n = Number(length);
      if (buf.length - bodyStart < n) return undefined;
      return { status, headers, body: buf.subarray(bodyStart, bodyStart + n) };
    }
    // No framing: the body runs to the end of the connection.
    return eof ? { status, headers, body: buf.subarray(bodyStart) } : undefined;
  }
}

function write(socket: Socket, data: Buffer | string): Promise<void> {
  return new Promise((resolve) => {
    if (socket.destroyed) return resolve();
    // Errors surface on the socket's 'error' listener; a write that fails just stops the writing.
    socket.write(data, () => resolve());
  });
}

/** Sends one request over a fresh connection; see RawRequest. Never rejects on socket errors. */
export async function rawRequest(req: RawRequest): Promise<RawResult> {
  const url = new URL(req.url);
  const socket = connect({ host: url.hostname, port: Number(url.port || 80), allowHalfOpen: true });
  let received = Buffer.alloc(0);
  let response: RawResponse | undefined;
  let socketError: Error | undefined;
  let closed = false;

  const done = new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      socket.destroy();
      resolve();
    }, req.timeoutMs ?? 30_000);
    const finish = () => {
      clearTimeout(timer);
      resolve();
    };
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      if (!response) {
        try {
          response = parseResponse(received, req.method, false);
        } catch {
          /* not HTTP: left undefined */
        }
      }
      // Unless we are about to reset the connection anyway, a complete response is all we wanted.
      if (response && req.after !== 'destroy') {
        socket.destroy();
        finish();
      }
    });
    socket.on('error', (err) => {
      socketError ??= err;
    });
    socket.on('end', () => {
      if (!socket.destroyed) socket.end();
    });
    socket.on('close', () => {
      closed = true;
      if (!response) {
        try {
          response = parseResponse(received, req.method, true);
        } catch {
          /* left undefined */
        }
      }
      finish();
    });
  });

  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });

  const headers: Record<string, string> = { ...req.headers };
  if (!Object.keys(headers).some((h) => h.toLowerCase() === 'host')) headers.Host = url.host;
  if (req.chunked) headers['Transfer-Encoding'] = 'chunked';
  let head = `${req.method} ${url.pathname}${url.search} HTTP/1.1\r\n`;
  for (const [k, v] of Object.entries(headers)) head += `${k}: ${v}\r\n`;
  head += '\r\n';
  await write(socket, head);

  const pieces = req.body === undefined ? [] : Array.isArray(req.body) ? req.body : [req.body];
  for (const [i, piece] of pieces.entries()) {
    if (i > 0 && req.pace) await req.pace();
    if (closed || response) break;
    if (req.chunked) {
      if (piece.length === 0) continue;
      await write(socket, `${piece.length.toString(16)}\r\n`);
      await write(socket, piece);
      await write(socket, '\r\n');
    } else {
      await write(socket, piece);
    }
  }
  const after = req.after ?? 'wait';
  if (req.chunked && after === 'wait' && !closed && !response) await write(socket, '0\r\n\r\n');

  if (req.beforeHangUp) await req.beforeHangUp();
  if (after === 'end') socket.end();
  else if (after === 'destroy') socket.destroy();

  await done;
  return { response, socketError };
}

/** The error code of an OCI error body, or undefined when the body is not one. */
export function rawErrorCode(res: RawResponse): string | undefined {
  try {
    const body = JSON.parse(res.body.toString('utf8')) as { errors?: Array<{ code?: string }> };
    return body.errors?.[0]?.code;
  } catch {
    return undefined;
  }
}
