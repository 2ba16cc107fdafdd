import { Agent, createServer, request, type ClientRequest, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { pipeline } from 'node:stream/promises';

/**
 * How long the test proxies keep an idle client connection: longer than any pause a test makes
 * between two requests (a CLI run, a wait for a worker). At Node's default of 5 s, a close could
 * cross a request the client had just written on that connection, and it failed as ECONNRESET.
 */
export const PROXY_KEEPALIVE_MS = 75_000;

/**
 * The answer's headers without the hop-by-hop ones: the node's `Keep-Alive: timeout=75` describes
 * its connection to the proxy, not the proxy's to the client, which Node describes itself.
 */
export function endToEndHeaders(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const { connection: _c, 'keep-alive': _k, ...rest } = headers;
  return rest;
}

/**
 * A loopback HTTP proxy that sends each request to the next node in turn, so every step of a push
 * (POST, each PATCH, PUT) lands on a different API node than the one before it. Bodies stream both
 * ways. A client that hangs up makes the proxy hang up on the node; one that half-closes mid-body
 * is half-closed towards the node too, so the node's own answer comes back.
 */
export async function startRoundRobin(
  targets: string[],
  options: {
    /** Headers to add to each request (credentials, when the suites run with auth on); a promise only when they must be fetched. */
    addHeaders?: (req: IncomingMessage) => Record<string, string> | Promise<Record<string, string>>;
  } = {},
): Promise<{ url: string; close(): Promise<void> }> {
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  const inFlight = new WeakMap<IncomingMessage, ClientRequest>();
  let next = 0;
  const forward = (req: IncomingMessage, res: ServerResponse, extra: Record<string, string>) => {
    const target = new URL(targets[next++ % targets.length]!);
    const upstream = request({ agent, host: target.hostname, port: target.port, method: req.method, path: req.url, headers: { ...req.headers, ...extra } }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, endToEndHeaders(answer.headers));
      pipeline(answer, res).catch(() => res.destroy());
    });
    inFlight.set(req, upstream);
    // A node may answer early (413) and close while the body is still coming: its answer still counts.
    upstream.on('error', () => {
      if (!res.headersSent) res.destroy();
    });
    req.on('close', () => {
      if (!req.complete && !req.socket.writable) upstream.destroy();
    });
    req.pipe(upstream);
  };
  const server: Server = createServer((req, res) => {
    const extra = options.addHeaders?.(req) ?? {};
    if (extra instanceof Promise)
      extra.then(
        (h) => forward(req, res, h),
        () => res.destroy(),
      );
    else forward(req, res, extra);
  });
  server.on('clientError', (err: Error & { code?: string }, socket: Socket) => {
    const req = (socket as Socket & { _httpMessage?: { req?: IncomingMessage } | null })._httpMessage?.req;
    const upstream = req && inFlight.get(req);
    if (err.code === 'HPE_INVALID_EOF_STATE' && upstream?.socket) {
      upstream.socket.end();
      return;
    }
    socket.destroy();
  });
  server.keepAliveTimeout = PROXY_KEEPALIVE_MS;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        agent.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
