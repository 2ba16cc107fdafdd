import { Agent, createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { endToEndHeaders, PROXY_KEEPALIVE_MS } from './round-robin.js';

export interface CountingProxy {
  url: string;
  port: number;
  /** Requests seen, as "METHOD /path" (query included). */
  requests: string[];
  /** Response body bytes sent back for paths that include `part`. */
  bytesFor(part: string): number;
  /** Requests whose path includes `part` (and, when given, whose method is `method`). */
  count(part: string, method?: string): number;
  /**
   * The next response whose path includes `part` is cut after `bytes` body bytes and every
   * connection is dropped, as if the upstream died mid-transfer; resolves once it has been cut.
   */
  cutNext(part: string, bytes: number): Promise<void>;
  /**
   * The next response whose path includes `part` stops after `bytes` body bytes, as a slow
   * upstream would, until release(); `reached` resolves once those bytes are sent. A client that
   * hangs up meanwhile ends it.
   */
  holdNext(part: string, bytes: number): { reached: Promise<void>; release(): void };
  /** Refuses connections (the upstream looks down) until start(). */
  stop(): Promise<void>;
  start(): Promise<void>;
  reset(): void;
  close(): Promise<void>;
}

/** An HTTP proxy in front of a registry that counts what passes and can play the upstream's death. On `port`, or a free one. */
export async function startCountingProxy(target: string, port = 0): Promise<CountingProxy> {
  const agent = new Agent({ keepAlive: true, maxSockets: 128 });
  const t = new URL(target);
  const requests: string[] = [];
  const bytes = new Map<string, number>();
  const sockets = new Set<Socket>();
  let cut: { part: string; bytes: number; done: () => void } | undefined;
  let hold: { part: string; bytes: number; reached: () => void; released: Promise<void> } | undefined;
  let server: ReturnType<typeof createServer> | undefined;
  const dropAll = () => {
    for (const s of sockets) s.destroy();
  };

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const path = req.url ?? '/';
    requests.push(`${req.method} ${path}`);
    const headers = req.headers;
    const upstream = request({ agent, host: t.hostname, port: t.port, method: req.method, path, headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, endToEndHeaders(answer.headers));
      const mine = cut && path.includes(cut.part) ? cut : undefined;
      if (mine) cut = undefined;
      const held = hold && path.includes(hold.part) ? hold : undefined;
      if (held) hold = undefined;
      res.on('close', () => answer.destroy());
      let sent = 0;
      answer.on('data', (chunk: Buffer) => {
        if (held && sent < held.bytes && sent + chunk.length >= held.bytes) {
          const head = chunk.subarray(0, held.bytes - sent);
          const rest = chunk.subarray(held.bytes - sent);
          sent += head.length;
          bytes.set(path, (bytes.get(path) ?? 0) + head.length);
          answer.pause();
          res.write(head, () => held.reached());
          void held.released.then(() => {
            if (res.destroyed) return;
            sent += rest.length;
            bytes.set(path, (bytes.get(path) ?? 0) + rest.length);
            res.write(rest);
            answer.resume();
          });
          return;
        }
        if (mine && sent + chunk.length >= mine.bytes) {
          const head = chunk.subarray(0, Math.max(0, mine.bytes - sent));
          sent += head.length;
          bytes.set(path, (bytes.get(path) ?? 0) + head.length);
          res.write(head, () => {
            answer.destroy();
            res.destroy();
            dropAll();
            mine.done();
          });
          return;
        }
        sent += chunk.length;
        bytes.set(path, (bytes.get(path) ?? 0) + chunk.length);
        if (!res.write(chunk)) {
          answer.pause();
          res.once('drain', () => answer.resume());
        }
      });
      answer.on('end', () => res.end());
      answer.on('error', () => res.destroy());
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  };

  const start = async () => {
    const s = createServer(handle);
    s.keepAliveTimeout = PROXY_KEEPALIVE_MS;
    s.on('connection', (socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.listen(port, '127.0.0.1', () => resolve());
    });
    port = (s.address() as AddressInfo).port;
    server = s;
  };
  const stop = async () => {
    const s = server;
    server = undefined;
    if (!s) return;
    const closed = new Promise<void>((resolve) => s.close(() => resolve()));
    dropAll();
    await closed;
  };
  await start();
  const matching = (part: string, method?: string) => requests.filter((r) => r.includes(part) && (method === undefined || r.startsWith(`${method} `)));
  return {
    get url() {
      return `http://127.0.0.1:${port}`;
    },
    get port() {
      return port;
    },
    requests,
    bytesFor: (part) => [...bytes].filter(([p]) => p.includes(part)).reduce((sum, [, n]) => sum + n, 0),
    count: (part, method) => matching(part, method).length,
    cutNext: (part, n) => new Promise<void>((resolve) => (cut = { part, bytes: n, done: resolve })),
    holdNext: (part, n) => {
      let release = () => {};
      const released = new Promise<void>((resolve) => (release = resolve));
      let reached = () => {};
      const reachedP = new Promise<void>((resolve) => (reached = resolve));
      hold = { part, bytes: n, reached, released };
      return { reached: reachedP, release };
    },
    stop,
    start,
    reset: () => {
      requests.length = 0;
      bytes.clear();
    },
    close: async () => {
      await stop();
      agent.destroy();
    },
  };
}
