import { connect, type Socket } from 'node:net';
import { Readable, type Writable } from 'node:stream';
import type { ByteRange } from './blob-store.js';
import type { CopiesToWritable } from './file-read-stream.js';
import { BodyStalledError } from './idle-body.js';
import { giveReadBuffer, READ_BUFFER_BYTES, takeReadBuffer } from './read-buffers.js';

/**
 * GetObject over plain HTTP/1.1 without the AWS SDK's HTTP stack, for blob GETs: the SDK's
 * IncomingMessage path allocates a fresh 64 KiB buffer per socket read and parses every body
 * byte, which made the garbage collector and HTTP parsing two fifths of a node's CPU when it
 * served blobs from S3. Here each connection reads into one buffer of its own (`onread`), the
 * bytes are copied into pooled 512 KiB chunks, and those are written to the client and reused
 * once flushed. Only `http:` endpoints and Content-Length bodies; anything else (chunked, TLS)
 * answers `undefined` and the caller uses the SDK.
 */

/** Bytes of one socket read; one buffer per connection, for its lifetime. */
const SOCKET_READ_BYTES = 64 * 1024;
/** Idle keep-alive connections kept per endpoint; more go closed. */
const MAX_IDLE = 16;
/** An idle connection unused this long is closed (RGW and AWS close theirs after a while anyway). */
const IDLE_MS = 15_000;
/** Chunks written to the client and not yet flushed, per GET; S3 is paused at this many. */
const MAX_IN_FLIGHT = 2;
/** The most of a status line, headers or an error body this client reads. */
const MAX_HEAD_BYTES = 64 * 1024;

export interface S3GetOptions {
  /** Milliseconds to connect (at most), to wait for the answer's headers, and for the body's next bytes while wanted. */
  timeoutMs: number;
  connectTimeoutMs: number;
  /** Attempts per GET on 5xx, throttling, timeouts and connection failures. */
  maxAttempts: number;
}

/** An S3 error answer or a failure to get one, shaped like the SDK's errors (`$metadata`), which isStorageUnavailable reads. */
export class S3GetError extends Error {
  $metadata: { httpStatusCode?: number; attempts?: number };
  code?: string;
  constructor(name: string, message: string, status?: number, code?: string) {
    super(message);
    this.name = name;
    this.$metadata = { httpStatusCode: status };
    if (code) this.code = code;
  }
}

const RETRYABLE_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);
const THROTTLING = new Set(['SlowDown', 'Throttling', 'ThrottlingException', 'RequestLimitExceeded', 'TooManyRequests']);

function retryable(err: S3GetError): boolean {
  const status = err.$metadata.httpStatusCode;
  if (status !== undefined) return status >= 500 || status === 429;
  return err.name === 'TimeoutError' || (err.code !== undefined && RETRYABLE_CODES.has(err.code));
}

/** The SDK's standard retry delay: full jitter, base 100 ms (500 ms when throttled), at most 20 s. */
function backoff(err: S3GetError, attempt: number): number {
  const base = THROTTLING.has(err.name) || err.$metadata.httpStatusCode === 429 ? 500 : 100;
  return Math.random() * Math.min(20_000, base * 2 ** (attempt - 1));
}

interface Head {
  status: number;
  headers: Map<string, string>;
}

/** One keep-alive connection to the endpoint. Bytes it reads go to `sink`, valid only during the call; false pauses the socket. */
class Connection {
  readonly socket: Socket;
  private readonly readBuffer = Buffer.allocUnsafeSlow(SOCKET_READ_BYTES);
  sink: ((bytes: Buffer) => boolean) | null = null;
  /** Told once when the connection fails or closes while a GET uses it. */
  lost: ((err: S3GetError) => void) | null = null;
  /** Told when the socket's timeout (set by whoever uses it) passes. */
  timeout: (() => void) | null = null;
  alive = true;

  constructor(host: string, port: number) {
    this.socket = connect({
      host,
      port,
      noDelay: true,
      onread: { buffer: this.readBuffer, callback: (n, buf) => this.read(buf as Buffer, n) },
    });
    const gone = (err?: Error & { code?: string }) => {
      if (!this.alive) return;
      this.alive = false;
      const lost = this.lost;
      this.lost = null;
      this.sink = null;
      this.socket.destroy();
      lost?.(
        new S3GetError(
          err?.name === 'TimeoutError' ? 'TimeoutError' : 'ConnectionError',
          `S3 connection: ${err?.message ?? 'closed by the server'}`,
          undefined,
          err?.code ?? 'ECONNRESET',
        ),
      );
    };
    this.socket.on('error', gone);
    this.socket.on('end', () => gone());
    this.socket.on('close', () => gone());
    this.socket.on('timeout', () => this.timeout?.());
  }

  private read(buf: Buffer, n: number): boolean {
    const sink = this.sink;
    if (!sink) {
      // Bytes nobody asked for (an idle connection): the exchange is out of step; never reuse it.
      this.destroy();
      return false;
    }
    return sink(buf.subarray(0, n));
  }

  destroy(): void {
    this.alive = false;
    this.lost = null;
    this.sink = null;
    this.timeout = null;
    this.socket.destroy();
  }
}

/** Keep-alive connections to one endpoint, GETs with retries, and their bodies as streams. */
export class S3GetClient {
  private readonly idle: Connection[] = [];
  private readonly host: string;
  private readonly port: number;
  private closed = false;

  constructor(
    endpoint: URL,
    private readonly options: S3GetOptions,
  ) {
    this.host = endpoint.hostname.replace(/^\[|\]$/g, '');
    this.port = Number(endpoint.port || 80);
  }

  /** Closes the idle connections; GETs in progress finish on theirs, which then close. */
  destroy(): void {
    this.closed = true;
    for (const c of this.idle.splice(0)) c.destroy();
  }

  /**
   * GETs `url` (presigned, path and query as signed) with retries; resolves with its body once the
   * headers are in, or `undefined` when the answer is one this client does not read (not a
   * Content-Length body): then the caller asks the SDK.
   */
  async get(url: URL, range: ByteRange | undefined): Promise<S3Body | undefined> {
    const target = url.pathname + url.search;
    const hostHeader = url.host;
    for (let attempt = 1; ; attempt++) {
      let conn = this.take();
      let reused = conn !== undefined;
      try {
        conn ??= await this.open();
        try {
          return await this.exchange(conn, target, hostHeader, range);
        } catch (err) {
          // A kept connection the server had closed before our request reached it: once more on a new one, not an attempt.
          if (!reused || !(err instanceof S3GetError) || err.code !== 'ECONNRESET' || err.$metadata.httpStatusCode !== undefined) throw err;
          reused = false;
          conn = await this.open();
          return await this.exchange(conn, target, hostHeader, range);
        }
      } catch (err) {
        if (!(err instanceof S3GetError)) throw err;
        err.$metadata.attempts = attempt;
        if (attempt >= this.options.maxAttempts || !retryable(err)) throw err;
        await new Promise((resolve) => setTimeout(resolve, backoff(err, attempt)));
      }
    }
  }

  private take(): Connection | undefined {
    while (this.idle.length) {
      const c = this.idle.pop()!;
      if (!c.alive) continue;
      c.socket.setTimeout(0);
      c.socket.ref();
      return c;
    }
    return undefined;
  }

  /** Hands a connection whose exchange ended cleanly back to the pool. */
  release(c: Connection): void {
    c.sink = null;
    c.lost = null;
    if (!c.alive) return;
    if (this.closed || this.idle.length >= MAX_IDLE) {
      c.destroy();
      return;
    }
    c.socket.unref();
    c.timeout = () => c.destroy();
    c.socket.setTimeout(IDLE_MS);
    this.idle.push(c);
  }

  private open(): Promise<Connection> {
    return new Promise((resolve, reject) => {
      const c = new Connection(this.host, this.port);
      const timer = setTimeout(() => {
        c.destroy();
        reject(new S3GetError('TimeoutError', `S3 did not accept a connection within ${this.options.connectTimeoutMs} ms`, undefined, 'ETIMEDOUT'));
      }, this.options.connectTimeoutMs);
      c.lost = (err) => {
        clearTimeout(timer);
        reject(err);
      };
      c.socket.once('connect', () => {
        clearTimeout(timer);
        c.lost = null;
        resolve(c);
      });
    });
  }

  /** Sends the request and reads the answer's head; an error answer's body too. */
  private exchange(c: Connection, target: string, host: string, range: ByteRange | undefined): Promise<S3Body | undefined> {
    const { timeoutMs } = this.options;
    return new Promise((resolve, reject) => {
      let head: Buffer = Buffer.alloc(0);
      let settled = false;
      const fail = (err: S3GetError) => {
        if (settled) return;
        settled = true;
        c.socket.setTimeout(0);
        c.destroy();
        reject(err);
      };
      c.lost = fail;
      c.timeout = () => fail(new S3GetError('TimeoutError', `S3 sent no answer within ${timeoutMs} ms`, undefined, 'ETIMEDOUT'));
      c.socket.setTimeout(timeoutMs);
      c.sink = (bytes) => {
        head = head.length ? Buffer.concat([head, bytes]) : Buffer.from(bytes);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) {
          if (head.length > MAX_HEAD_BYTES) fail(new S3GetError('InvalidResponse', 'S3 answered with an oversized head'));
          return true;
        }
        const parsed = parseHead(head.toString('latin1', 0, end));
        if (!parsed) {
          fail(new S3GetError('InvalidResponse', 'S3 answered with an unreadable head'));
          return false;
        }
        const rest = head.subarray(end + 4);
        const length = Number(parsed.headers.get('content-length') ?? Number.NaN);
        const keepAlive = !/close/i.test(parsed.headers.get('connection') ?? '');
        if (parsed.headers.has('transfer-encoding') || !Number.isSafeInteger(length) || length < 0) {
          // Not a body this client reads: the SDK will.
          settled = true;
          c.socket.setTimeout(0);
          c.destroy();
          resolve(undefined);
          return false;
        }
        if (parsed.status < 200 || parsed.status >= 300) {
          readErrorBody(parsed, length, rest);
          return true;
        }
        // Checked here, not by the body: an error the body found before its reader exists would be emitted to no listener.
        if (rest.length > length) {
          fail(new S3GetError('InvalidResponse', 'S3 sent more bytes than its Content-Length'));
          return false;
        }
        settled = true;
        c.socket.setTimeout(0);
        const body = new S3Body(this, c, length, keepAlive, timeoutMs);
        resolve(body);
        return body.receive(rest);
      };
      const readErrorBody = (parsed: Head, length: number, first: Buffer) => {
        if (length > MAX_HEAD_BYTES) return fail(statusError(parsed, ''));
        let text = Buffer.from(first);
        const done = () => {
          if (settled) return;
          settled = true;
          c.socket.setTimeout(0);
          const err = statusError(parsed, text.toString('utf8', 0, length));
          if (text.length === length) this.release(c);
          else c.destroy();
          reject(err);
        };
        if (text.length >= length) return done();
        c.sink = (bytes) => {
          text = Buffer.concat([text, bytes]);
          if (text.length >= length) done();
          return true;
        };
      };
      const lines = [`GET ${target} HTTP/1.1`, `Host: ${host}`, 'User-Agent: wharf', 'Accept-Encoding: identity'];
      if (range) lines.push(`Range: bytes=${range.start}-${range.end}`);
      c.socket.write(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
    });
  }
}

function parseHead(text: string): Head | undefined {
  const lines = text.split('\r\n');
  const status = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '');
  if (!status) return undefined;
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  return { status: Number(status[1]), headers };
}

/** The error an S3 error answer means, named by its XML <Code> as the SDK names it (NoSuchKey, SlowDown...). */
function statusError(head: Head, body: string): S3GetError {
  const code = /<Code>([^<]*)<\/Code>/.exec(body)?.[1];
  const message = /<Message>([^<]*)<\/Message>/.exec(body)?.[1];
  const fallback = head.status === 404 ? 'NotFound' : head.status === 503 ? 'ServiceUnavailable' : `HTTP${head.status}`;
  return new S3GetError(code || fallback, message || `S3 answered ${head.status}`, head.status);
}

/**
 * The body of one GetObject answer. Piped or iterated it is a Readable of 512 KiB chunks; through
 * copyTo its chunks come from the read buffer pool and go back to it once the destination has
 * flushed them. S3 is read only while the reader wants more; while it does, S3 bringing no byte
 * for the timeout ends the body with BodyStalledError. A body that ends short is an error, never
 * a shorter success.
 */
export class S3Body extends Readable implements CopiesToWritable {
  private remaining: number;
  /** The chunk being filled from the socket, and how far. */
  private filling: Buffer | null = null;
  private filled = 0;
  /** Chunks (the last one may be partial) received and not yet handed to the reader. */
  private readonly ready: Buffer[] = [];
  private wanted = false;
  private out: Writable | null = null;
  private inFlight = 0;
  private paused = false;
  private copying = false;
  private settleCopy: ((err?: Error) => void) | null = null;

  constructor(
    private readonly client: S3GetClient,
    private connection: Connection | null,
    length: number,
    private readonly keepAlive: boolean,
    private readonly timeoutMs: number,
  ) {
    super({ highWaterMark: READ_BUFFER_BYTES });
    this.remaining = length;
    const c = connection!;
    c.lost = (err) => this.cut(new S3GetError(err.name, `${err.message}, ${this.remaining} bytes before the end of the body`, undefined, err.code));
    c.sink = (bytes) => this.receive(bytes);
    c.timeout = this.onStall;
    if (length === 0) this.finishReceiving();
  }

  /** Takes bytes from the socket (valid only during the call); false: pause it. */
  receive(bytes: Buffer): boolean {
    if (bytes.length > this.remaining) {
      this.cut(new S3GetError('InvalidResponse', 'S3 sent more bytes than its Content-Length'));
      return false;
    }
    const n = bytes.length;
    let at = 0;
    while (at < n) {
      // From the pool in either mode: a piped reader keeps its chunks, copyTo gives them back.
      this.filling ??= takeReadBuffer();
      const take = Math.min(n - at, this.filling.length - this.filled);
      bytes.copy(this.filling, this.filled, at, at + take);
      this.filled += take;
      at += take;
      this.remaining -= take;
      if (this.filled === this.filling.length || this.remaining === 0) this.seal();
    }
    if (this.remaining === 0) this.finishReceiving();
    this.handOver();
    return this.connection ? !this.shouldPause() : true;
  }

  private seal(): void {
    if (!this.filling) return;
    this.ready.push(this.filled === this.filling.length ? this.filling : this.filling.subarray(0, this.filled));
    this.filling = null;
    this.filled = 0;
  }

  private shouldPause(): boolean {
    const pause = this.ready.length > 0 || this.inFlight >= MAX_IN_FLIGHT || (!this.wanted && !this.out);
    if (pause !== this.paused) {
      this.paused = pause;
      // The stall timer runs only while the body waits on S3.
      this.connection?.socket.setTimeout(pause ? 0 : this.timeoutMs);
    }
    return pause;
  }

  private resumeIfWanted(): void {
    const c = this.connection;
    if (!c || !this.paused || this.shouldPause()) return;
    c.socket.resume();
  }

  /** All bytes are in: the connection goes back to the pool. */
  private finishReceiving(): void {
    const c = this.connection;
    if (!c) return;
    this.connection = null;
    c.timeout = null;
    c.socket.setTimeout(0);
    if (this.keepAlive) this.client.release(c);
    else c.destroy();
  }

  private readonly onStall = () => {
    if (this.paused || !this.connection) return;
    this.cut(new BodyStalledError(this.timeoutMs));
  };

  /** S3 failed the body: it ends with `err`, and its connection is never reused. */
  private cut(err: Error): void {
    const c = this.connection;
    this.connection = null;
    c?.destroy();
    if (this.settleCopy) this.settleCopy(err);
    else this.destroy(err);
  }

  /** Gives ready chunks to whoever reads: the copy's destination, or the Readable's buffer. */
  private handOver(): void {
    while (this.ready.length) {
      if (this.out) {
        if (this.inFlight >= MAX_IN_FLIGHT) break;
        const chunk = this.ready.shift()!;
        this.inFlight++;
        this.out.write(chunk, (err) => this.written(chunk, err));
      } else if (this.wanted) {
        this.wanted = this.push(this.ready.shift()!);
      } else break;
    }
    if (!this.out && this.wanted && this.ready.length === 0 && this.remaining === 0 && !this.connection) {
      this.wanted = false;
      this.push(null);
    }
    this.maybeFinishCopy();
  }

  private written(chunk: Buffer, err: Error | null | undefined): void {
    this.inFlight--;
    if (err) return void this.settleCopy?.(err);
    giveReadBuffer(chunk.length === READ_BUFFER_BYTES ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, READ_BUFFER_BYTES));
    this.handOver();
    this.resumeIfWanted();
  }

  private maybeFinishCopy(): void {
    if (this.settleCopy && this.remaining === 0 && !this.connection && this.ready.length === 0 && this.inFlight === 0) this.settleCopy();
  }

  override _read(): void {
    this.wanted = true;
    this.handOver();
    this.resumeIfWanted();
  }

  async copyTo(out: Writable): Promise<void> {
    if (this.copying || this.readableFlowing !== null || this.destroyed) throw new Error('the stream is already being read');
    this.copying = true;
    let clean = false;
    const done = new Promise<void>((resolve, reject) => {
      this.settleCopy = (err) => {
        this.settleCopy = null;
        if (err) reject(err);
        else resolve();
      };
    });
    const onClose = () => this.settleCopy?.(new Error('the destination closed before the copy ended'));
    const onError = (err: Error) => this.settleCopy?.(err);
    out.once('close', onClose);
    out.once('error', onError);
    try {
      this.out = out;
      this.handOver();
      this.resumeIfWanted();
      await done;
      clean = true;
    } finally {
      out.off('close', onClose);
      out.off('error', onError);
      this.out = null;
      if (clean && this.filling) giveReadBuffer(this.filling);
      this.filling = null;
      this.destroy();
    }
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    const c = this.connection;
    this.connection = null;
    // Mid-body: the rest of the answer would still arrive on it, so it cannot be reused.
    c?.destroy();
    this.ready.length = 0;
    callback(err);
  }
}
