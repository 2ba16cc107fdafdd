import type { Socket } from 'node:net';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { counter, gauge, histogram } from '../../libs/metrics/index.js';

/** An incoming X-Request-Id is reused only if it is short and plain, so it cannot smuggle anything into logs or events. */
const REQUEST_ID = /^[A-Za-z0-9._:@/+=-]{1,128}$/;

export function requestId(header: string | string[] | undefined): string | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  return value !== undefined && REQUEST_ID.test(value) ? value : undefined;
}

/**
 * The route label of a request: the endpoint's template (`/v2/<name>/blobs/<digest>`), never
 * its path, so repository names and digests cannot blow up the number of series.
 */
export function routeLabel(request: FastifyRequest, prefix: string): string {
  if (request.routeTemplate) return request.routeTemplate;
  const url = request.routeOptions.url;
  if (!url) return 'unmatched';
  return url.startsWith(prefix) ? url.slice(prefix.length) || '/' : url;
}

/** Socket byte counters at the end of the previous request on the same keep-alive connection. */
interface SocketMark {
  read: number;
  written: number;
}

export interface HttpMetrics {
  uploadsInFlight: ReturnType<typeof gauge>;
  started(reply: FastifyReply): void;
  /** Records the request's series; returns the bytes it moved, headers included. */
  finished(request: FastifyRequest, reply: FastifyReply, route: string): { bytesIn: number; bytesOut: number };
}

export function httpMetrics(): HttpMetrics {
  const labelNames = ['method', 'route', 'status'] as const;
  const requests = counter({ name: 'wharf_http_requests_total', help: 'HTTP requests answered, by method, route template and status', labelNames });
  const duration = histogram({
    name: 'wharf_http_request_duration_seconds',
    help: 'Time from request to the end of the response, by method, route template and status',
    labelNames,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
  });
  const bytesIn = counter({ name: 'wharf_http_request_bytes_total', help: 'Bytes received (headers and body), by method and route template', labelNames: ['method', 'route'] });
  const bytesOut = counter({ name: 'wharf_http_response_bytes_total', help: 'Bytes sent (headers and body), by method and route template', labelNames: ['method', 'route'] });
  const inFlight = gauge({ name: 'wharf_http_requests_in_flight', help: 'Requests being served' });
  const uploadsInFlight = gauge({ name: 'wharf_uploads_in_flight', help: 'Upload requests (POST, PATCH, PUT of blob uploads) whose body is being received' });
  const marks = new WeakMap<Socket, SocketMark>();

  return {
    uploadsInFlight,
    started(reply) {
      inFlight.inc();
      // 'close' comes whether the response finished or the client went away mid-request.
      reply.raw.once('close', () => inFlight.dec());
    },
    finished(request, reply, route) {
      const socket = request.raw.socket;
      // Deltas of the connection's counters since the previous request on it: exact for
      // keep-alive connections, which carry one request at a time.
      const before = marks.get(socket) ?? { read: 0, written: 0 };
      const now = { read: socket?.bytesRead ?? 0, written: socket?.bytesWritten ?? 0 };
      marks.set(socket, now);
      const moved = { bytesIn: Math.max(0, now.read - before.read), bytesOut: Math.max(0, now.written - before.written) };
      const status = String(reply.statusCode);
      requests.inc({ method: request.method, route, status });
      duration.observe({ method: request.method, route, status }, reply.elapsedTime / 1000);
      bytesIn.inc({ method: request.method, route }, moved.bytesIn);
      bytesOut.inc({ method: request.method, route }, moved.bytesOut);
      return moved;
    },
  };
}
