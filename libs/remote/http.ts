import http, { type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import https from 'node:https';

/** Keep-alive agents shared by every remote client of the process: a cold pull opens few connections. */
const agents = {
  http: new http.Agent({ keepAlive: true, maxSockets: 64 }),
  https: new https.Agent({ keepAlive: true, maxSockets: 64 }),
};

export class TimeoutError extends Error {
  readonly code = 'ETIMEDOUT';
  constructor(ms: number) {
    super(`no data for ${ms} ms`);
  }
}

/**
 * One HTTP request. `idleMs` bounds every silence on the socket: waiting for the connection, for
 * the response head, and between chunks of the body (a stalled body errors the response stream).
 */
export function send(url: URL, method: string, headers: OutgoingHttpHeaders, idleMs: number): Promise<IncomingMessage> {
  const module = url.protocol === 'https:' ? https : http;
  const agent = url.protocol === 'https:' ? agents.https : agents.http;
  return new Promise((resolve, reject) => {
    const req = module.request(url, { method, headers, agent }, (res) => {
      res.on('error', () => {}); // surfaced to whoever reads the body
      resolve(res);
    });
    req.setTimeout(idleMs, () => req.destroy(new TimeoutError(idleMs)));
    req.once('error', reject);
    req.end();
  });
}

/** Reads a (small) response body whole, at most `limit` bytes. */
export async function readBody(res: IncomingMessage, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res) {
    size += (chunk as Buffer).length;
    if (size > limit) {
      res.destroy();
      throw Object.assign(new Error(`response body larger than ${limit} bytes`), { code: 'EBODYTOOLARGE' });
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** Discards a body we do not need, so the connection can be reused. */
export function drain(res: IncomingMessage): void {
  res.resume();
}
