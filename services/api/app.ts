import { randomUUID } from 'node:crypto';
import { STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from '../../libs/log/index.js';
import { metricsText } from '../../libs/metrics/index.js';
import { RegistryError } from '../../libs/oci/index.js';
import { unavailableDependency, unavailableError, type HealthChecker, type Registry, type RequestContext } from '../../libs/registry/index.js';
import type { EventSource } from '../../libs/events/index.js';
import type { Call, Handler, MethodTable } from './call.js';
import { matchEndpoint, ROUTE_TEMPLATES, splitV2Url, type Endpoint } from './dispatch.js';
import { httpMetrics, requestId, routeLabel } from './observe.js';
import { base } from './routes/base.js';
import { blobs } from './routes/blobs.js';
import { catalog, referrers, tags } from './routes/listings.js';
import { manifests } from './routes/manifests.js';
import { upload, uploadStart } from './routes/uploads.js';
import { extensions, manifestListing, namespace, tagDetails, tagHistory } from './routes/wharf.js';
import { installAuth, type AuthOptions } from './auth.js';
import { externalOrigin } from './external-origin.js';
import { installTokenIssuer } from './token-issuer.js';

export interface ApiOptions {
  registry: Registry;
  logger: Logger;
  /** Path prefix the API answers under ('' or '/segment...'). */
  prefix: string;
  pageSize: number;
  manifestMaxBytes: number;
  source: EventSource;
  /** Milliseconds a request body may stall. */
  bodyTimeoutMs: number;
  /** Answers /readyz, and tells a failing request whether a dependency is down (503) or not (500). */
  health: HealthChecker;
  /** Access control, rate limiting and the built-in token issuer; absent: none of them. */
  auth?: AuthOptions;
  /** PEM certificate and key: serve HTTPS. */
  tls?: { cert: string; key: string };
  /** Largest request head Node's parser accepts (431 above); Node's default when absent. */
  maxHeaderBytes?: number;
  /** Reverse proxies (addresses, CIDR blocks, loopback/linklocal/uniquelocal) whose X-Forwarded-* headers count. */
  trustedProxies?: string[];
}

const TABLES: { [K in Endpoint['kind']]: MethodTable<Extract<Endpoint, { kind: K }>> } = {
  base,
  catalog,
  tags,
  manifest: manifests,
  uploads: uploadStart,
  upload,
  blob: blobs,
  referrers,
  extensions,
  namespace,
  manifestListing,
  tagDetails,
  tagHistory,
};

const METHODS = ['GET', 'HEAD', 'PUT', 'POST', 'PATCH', 'DELETE'] as const;

declare module 'fastify' {
  interface FastifyRequest {
    routeTemplate?: string;
    repository?: string;
  }
}

function sendError(reply: FastifyReply, err: RegistryError): FastifyReply {
  for (const [k, v] of Object.entries(err.headers)) reply.header(k, v);
  return reply.code(err.status).type('application/json').send(err.toJSON());
}

/** Turns anything thrown into OCI error JSON; only what is not the client's fault is a 5xx. */
function toRegistryError(err: unknown): RegistryError {
  if (err instanceof RegistryError) return err;
  const status = (err as { statusCode?: number }).statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    const code = status === 413 ? 'SIZE_INVALID' : status === 415 ? 'MANIFEST_INVALID' : 'UNSUPPORTED';
    return new RegistryError(code, (err as Error).message, { status });
  }
  return new RegistryError('UNKNOWN', 'internal error');
}

/**
 * Requests Node's HTTP parser rejects never reach a handler; they still get OCI error JSON.
 * A body cut short mid-request is the exception: its handler is running and answers itself.
 */
function answerClientError(err: Error & { code?: string }, socket: Socket): void {
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
  const body = JSON.stringify(new RegistryError(code, 'malformed HTTP request', { status, detail: { reason: err.code ?? err.message } }).toJSON());
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
      `Docker-Distribution-API-Version: registry/2.0\r\nConnection: close\r\n\r\n${body}`,
  );
}

export function buildApi(options: ApiOptions): FastifyInstance {
  const serverOptions = options.maxHeaderBytes ? { maxHeaderSize: options.maxHeaderBytes } : {};
  const app = Fastify({
    ...(options.tls ? { https: { ...options.tls, ...serverOptions } } : { http: serverOptions }),
    loggerInstance: options.logger as FastifyBaseLogger,
    // Behind a trusted proxy request.protocol, request.host and request.ip come from X-Forwarded-*.
    trustProxy: options.trustedProxies?.length ? options.trustedProxies : false,
    // One log line per request, written by the onResponse hook below.
    logController: new LogController({ disableRequestLogging: true }),
    // An incoming X-Request-Id is kept when it looks like an id, so one id follows a request
    // through proxies, this node's log line and the events it causes.
    requestIdHeader: false,
    genReqId: (raw) => requestId(raw.headers['x-request-id']) ?? randomUUID(),
    // Upload bodies are streamed by the handlers, which enforce their own limits.
    bodyLimit: Number.MAX_SAFE_INTEGER,
    routerOptions: { maxParamLength: 8192 },
    // While the node drains, a request on an already open connection is served (Connection: close).
    return503OnClosing: false,
    requestTimeout: 0,
    connectionTimeout: 0,
    keepAliveTimeout: 75_000,
    clientErrorHandler: answerClientError,
    frameworkErrors: (err, _request, reply) => {
      reply.header('docker-distribution-api-version', 'registry/2.0');
      const error = err.code === 'FST_ERR_BAD_URL' ? new RegistryError('NAME_INVALID', 'malformed URL path', { detail: { reason: err.message } }) : toRegistryError(err);
      void sendError(reply, error);
    },
  }) as unknown as FastifyInstance;
  app.server.headersTimeout = 60_000;

  app.removeAllContentTypeParsers();
  // Leave every body unread: blob bodies stream from request.raw, manifests are read with a limit.
  app.addContentTypeParser('*', (_request, _payload, done) => done(null, undefined));

  const metrics = httpMetrics();

  app.addHook('onRequest', async (request, reply) => {
    reply.header('docker-distribution-api-version', 'registry/2.0');
    reply.header('x-request-id', String(request.id));
    request.raw.setTimeout(options.bodyTimeoutMs);
    metrics.started(reply);
  });
  if (options.auth) {
    installAuth(app, options.auth, options.prefix);
    if (options.auth.token?.signingKey && options.auth.htpasswd) installTokenIssuer(app, options.auth, options.prefix);
  }

  app.addHook('onResponse', async (request, reply) => {
    const route = routeLabel(request, options.prefix);
    const { bytesIn, bytesOut } = metrics.finished(request, reply, route);
    request.log.info(
      {
        method: request.method,
        route,
        repository: request.repository,
        user: request.identity?.user,
        status: reply.statusCode,
        bytesIn,
        bytesOut,
        ms: Math.round(reply.elapsedTime),
      },
      'request',
    );
  });

  app.setErrorHandler(async (err, request, reply) => {
    let registryError = toRegistryError(err);
    if (registryError.status >= 500 && !(err instanceof RegistryError)) {
      // PostgreSQL or the store being down is not a bug: say which, and when to come back.
      const named = unavailableDependency(err);
      const down = named ? [named] : (await options.health.check()).checks.filter((c) => c.required && !c.ok).map((c) => c.name);
      if (down.length > 0) registryError = unavailableError(down);
    }
    if (registryError.code === 'UNAVAILABLE') request.log.warn({ err: (err as Error).message, detail: registryError.detail }, 'service unavailable');
    else if (registryError.status >= 500) request.log.error({ err }, 'request failed');
    else request.log.debug({ err: registryError.message, code: registryError.code }, 'request refused');
    // A body we did not read cannot be left in the connection.
    if (!request.raw.complete) reply.header('connection', 'close');
    return sendError(reply, registryError);
  });

  const v2 = `${options.prefix}/v2`;

  app.setNotFoundHandler((request, reply) => sendError(reply, new RegistryError('UNSUPPORTED', 'no such endpoint', { status: 404 })));

  const dispatch = async (request: FastifyRequest, reply: FastifyReply) => {
    // The same split the access check made: the name authorized is the name served.
    const parts = splitV2Url(request.raw.url ?? '', v2);
    if (!parts) throw new RegistryError('NAME_INVALID', 'malformed path');
    const { path, query } = parts;
    const endpoint = matchEndpoint(path);
    if (!endpoint) throw new RegistryError('UNSUPPORTED', 'no such endpoint', { status: 404 });
    request.routeTemplate = ROUTE_TEMPLATES[endpoint.kind];
    if ('name' in endpoint) request.repository = endpoint.name;
    const handler = (TABLES[endpoint.kind] as MethodTable<Endpoint>)[request.method] as Handler | undefined;
    if (!handler) {
      const allowed = METHODS.filter((m) => (TABLES[endpoint.kind] as MethodTable<Endpoint>)[m]).join(', ');
      throw new RegistryError('UNSUPPORTED', `${request.method} is not supported here`, { status: 405, headers: { Allow: allowed } });
    }
    const headers = request.headers;
    const context: RequestContext = {
      urlBase: `${externalOrigin(request)}${options.prefix}`,
      request: {
        id: String(request.id),
        addr: `${request.ip}:${request.socket.remotePort ?? 0}`,
        host: request.host ?? '',
        method: request.method,
        useragent: headers['user-agent'] ?? '',
      },
      actor: request.identity?.user !== undefined ? { name: request.identity.user } : {},
      source: options.source,
    };
    const identity = request.identity;
    if (identity) context.mayRead = (repository) => identity.may('repository', repository, 'pull');
    const call: Call = {
      request,
      reply,
      endpoint,
      query,
      registry: options.registry,
      context,
      v2,
      pageSize: options.pageSize,
      manifestMaxBytes: options.manifestMaxBytes,
    };
    const sendsBlob = (endpoint.kind === 'upload' || endpoint.kind === 'uploads') && request.method !== 'GET' && request.method !== 'DELETE';
    if (!sendsBlob) return handler(call);
    metrics.uploadsInFlight.inc();
    try {
      return await handler(call);
    } finally {
      metrics.uploadsInFlight.dec();
    }
  };

  // Distribution answers /v2 like /v2/; some clients probe it without the slash.
  app.route({ method: ['GET', 'HEAD'], url: v2, handler: (request, reply) => reply.redirect(`${v2}/`, 301), exposeHeadRoute: false });
  app.route({ method: [...METHODS], url: `${v2}/`, handler: dispatch, exposeHeadRoute: false });
  app.route({ method: [...METHODS], url: `${v2}/*`, handler: dispatch, exposeHeadRoute: false });
  app.get(`${options.prefix}/healthz`, async () => ({ status: 'ok' }));
  app.get(`${options.prefix}/readyz`, async (_request, reply) => {
    const report = await options.health.check();
    const down = report.checks.filter((c) => !c.ok);
    return reply.code(report.ready ? 200 : 503).send({
      status: report.ready ? 'ready' : 'unavailable',
      // Named plainly, so an operator reads the cause off the probe's body.
      down: down.map((c) => c.name),
      checks: Object.fromEntries(report.checks.map((c) => [c.name, { ok: c.ok, required: c.required, ms: c.ms, ...(c.error ? { error: c.error } : {}) }])),
      ...(down.some((c) => c.name === 'nats') ? { note: 'NATS does not make a node unready: events wait in the outbox and are published when it is back' } : {}),
    });
  });
  // Queue counts and last error per webhook endpoint (docs/events.md).
  app.get(`${options.prefix}/_wharf/admin/webhooks`, async (_request, reply) => reply.type('application/json').send(await options.registry.webhooks.status()));
  app.get(`${options.prefix}/metrics`, async (_request, reply) => {
    const { contentType, body } = await metricsText();
    return reply.type(contentType).send(body);
  });
  return app;
}
