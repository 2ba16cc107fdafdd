import { connect, createServer, type Server, type Socket } from 'node:net';

export interface TcpProxy {
  /** The loopback port the proxy listens on; the same after stop() and start(). */
  port: number;
  /** Closes the listener and every connection through it: the target looks gone. */
  stop(): Promise<void>;
  /** Listens again on the same port. */
  start(): Promise<void>;
  /**
   * Keeps every connection open but forwards nothing, either way, on old and new connections
   * alike: the target looks alive to TCP and never answers (a hung server, a black-holing network).
   */
  stall(): void;
  /** Forwards again, the bytes held meanwhile first. */
  resume(): void;
  /** Connections through the proxy that are open now. */
  readonly connections: number;
  close(): Promise<void>;
}

/** A TCP proxy to `target` a test can stop and start, to take a dependency away and bring it back. */
export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  let server: Server | undefined;
  const sockets = new Set<Socket>();
  const pairs = new Set<[Socket, Socket]>();
  let stalled = false;
  let port = 0;
  const forward = ([client, upstream]: [Socket, Socket]) => {
    client.pipe(upstream).pipe(client);
    client.resume();
    upstream.resume();
  };
  const hold = ([client, upstream]: [Socket, Socket]) => {
    client.unpipe(upstream);
    upstream.unpipe(client);
    client.pause();
    upstream.pause();
  };
  const start = async () => {
    const s = createServer((client) => {
      const upstream = connect(target.port, target.host);
      const pair: [Socket, Socket] = [client, upstream];
      pairs.add(pair);
      for (const socket of pair) {
        sockets.add(socket);
        socket.on('close', () => {
          sockets.delete(socket);
          pairs.delete(pair);
          // Unpiped while stalled, the other side would not learn of the close.
          client.destroy();
          upstream.destroy();
        });
        socket.on('error', () => {
          client.destroy();
          upstream.destroy();
        });
      }
      if (stalled) hold(pair);
      else forward(pair);
    });
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.listen(port, '127.0.0.1', () => resolve());
    });
    server = s;
    port = (s.address() as { port: number }).port;
  };
  const stop = async () => {
    const s = server;
    server = undefined;
    const closed = new Promise<void>((resolve) => (s ? s.close(() => resolve()) : resolve()));
    for (const socket of sockets) socket.destroy();
    await closed;
  };
  await start();
  return {
    get port() {
      return port;
    },
    get connections() {
      return pairs.size;
    },
    stop,
    start,
    stall() {
      stalled = true;
      for (const pair of pairs) hold(pair);
    },
    resume() {
      stalled = false;
      for (const pair of pairs) forward(pair);
    },
    close: stop,
  };
}
