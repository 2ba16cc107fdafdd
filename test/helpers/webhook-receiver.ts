import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ReceivedEvent {
  id: string;
  action: string;
  target: { repository: string; digest?: string; tag?: string; mediaType?: string; fromRepository?: string };
  [key: string]: unknown;
}

export interface ReceivedRequest {
  body: Buffer;
  headers: IncomingMessage['headers'];
  events: ReceivedEvent[];
  /** The status the receiver answered. */
  status: number;
}

/** Decides the answer to one request: a status, or 'hang' to never answer. */
export type Behaviour = (events: ReceivedEvent[], attemptOfFirst: number, req: IncomingMessage) => number | 'hang' | Promise<number | 'hang'>;

/**
 * A real HTTP webhook receiver on a loopback port. Requests answered 2xx count as received.
 * down()/up() close and reopen the same port, so deliveries meanwhile get "connection refused".
 */
export class WebhookReceiver {
  readonly requests: ReceivedRequest[] = [];
  /** Attempts seen per event id, whatever the answer. */
  readonly attempts = new Map<string, number>();
  behaviour: Behaviour = () => 200;
  /** Requests being held open by a 'hang' answer. */
  hanging = 0;
  private server: Server | undefined;
  private readonly held = new Set<ServerResponse>();
  port = 0;

  get url(): string {
    return `http://127.0.0.1:${this.port}/hook`;
  }

  async up(): Promise<void> {
    const server = createServer((req, res) => void this.handle(req, res));
    server.keepAliveTimeout = 1_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  /** Stops listening and drops every open connection: later deliveries are refused. */
  async down(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    for (const res of this.held) res.destroy();
    this.held.clear();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Events answered 2xx, in arrival order (duplicates included). */
  delivered(): ReceivedEvent[] {
    return this.requests.filter((r) => r.status >= 200 && r.status < 300).flatMap((r) => r.events);
  }

  deliveredIds(): Set<string> {
    return new Set(this.delivered().map((e) => e.id));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    let events: ReceivedEvent[] = [];
    try {
      events = (JSON.parse(body.toString()) as { events: ReceivedEvent[] }).events;
    } catch {
      res.writeHead(400).end();
      return;
    }
    const first = events[0]?.id ?? '';
    const attempt = (this.attempts.get(first) ?? 0) + 1;
    this.attempts.set(first, attempt);
    const answer = await this.behaviour(events, attempt, req);
    if (answer === 'hang') {
      this.hanging++;
      this.held.add(res);
      res.on('close', () => {
        this.hanging--;
        this.held.delete(res);
      });
      return;
    }
    this.requests.push({ body, headers: req.headers, events, status: answer });
    res.writeHead(answer, { 'content-type': 'text/plain' }).end(answer >= 300 ? 'receiver says no' : 'ok');
  }
}

export async function startReceiver(behaviour?: Behaviour): Promise<WebhookReceiver> {
  const r = new WebhookReceiver();
  if (behaviour) r.behaviour = behaviour;
  await r.up();
  return r;
}
