import { createHmac } from 'node:crypto';
import type { WebhookEndpoint } from '../../libs/config/index.js';
import { webhookTarget } from './webhook-target.js';

/** Distribution's envelope media type: its webhook consumers check it. */
export const ENVELOPE_MEDIA_TYPE = 'application/vnd.docker.distribution.events.v1+json';
export const SIGNATURE_HEADER = 'X-Wharf-Signature-256';

export interface SendResult {
  ok: boolean;
  status: number | null;
  latencyMs: number;
  error: string | null;
}

/** `sha256=` and the hex HMAC-SHA256 of the exact body bytes, GitHub-style. */
export function signBody(secret: string, body: string | Buffer): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

function describe(err: unknown, timeoutMs: number): string {
  const e = err as Error & { cause?: { code?: string; message?: string } };
  if (e.name === 'TimeoutError' || e.name === 'AbortError') return `timed out after ${timeoutMs} ms`;
  const cause = e.cause?.code ?? e.cause?.message;
  return cause ? `${e.message}: ${cause}` : e.message;
}

/** POSTs one event in Distribution's envelope; any 2xx is success. Never throws. */
export async function sendEvent(endpoint: WebhookEndpoint, event: unknown, meta: { eventId: string; attempt: number }): Promise<SendResult> {
  const body = JSON.stringify({ events: [event] });
  const target = webhookTarget(endpoint);
  const headers = new Headers();
  for (const [name, values] of Object.entries(endpoint.headers)) for (const v of values) headers.append(name, v);
  // URL credentials become Basic auth, as in Distribution (they win over a configured Authorization header, as there).
  if (target.authorization) headers.set('authorization', target.authorization);
  headers.set('content-type', ENVELOPE_MEDIA_TYPE);
  headers.set('user-agent', 'wharf-webhooks');
  headers.set('x-wharf-event-id', meta.eventId);
  headers.set('x-wharf-delivery-attempt', String(meta.attempt));
  if (endpoint.secret) headers.set(SIGNATURE_HEADER, signBody(endpoint.secret, body));
  const started = performance.now();
  try {
    // One signal for the whole exchange: a receiver that sends headers and then stalls the body is a timeout too.
    const signal = AbortSignal.timeout(endpoint.timeoutMs);
    const res = await fetch(target.url, { method: 'POST', headers, body, signal, redirect: 'manual' });
    const text = await res.text();
    const latencyMs = performance.now() - started;
    if (res.status >= 200 && res.status < 300) return { ok: true, status: res.status, latencyMs, error: null };
    const excerpt = text.slice(0, 200).replace(/\s+/g, ' ').trim();
    // What is kept (webhook_attempts, the admin view, logs) never carries the endpoint's secrets, even when the receiver echoes them.
    return { ok: false, status: res.status, latencyMs, error: target.scrub(`HTTP ${res.status}${excerpt ? `: ${excerpt}` : ''}`) };
  } catch (err) {
    return { ok: false, status: null, latencyMs: performance.now() - started, error: target.scrub(describe(err, endpoint.timeoutMs)) };
  }
}
