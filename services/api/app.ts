import { randomUUID } from 'node:crypto';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from '../../libs/log/index.js';
import { RegistryError } from '../../libs/oci/index.js';
import { unavailableDependency, unavailableError, type HealthChecker, type Registry } from '../../libs/registry/index.js';
import type { EventSource } from '../../libs/events/index.js';
import { callFor, type CallSettings, type Handler, type MethodTable } from './call.js';
import { matchV2Url, ROUTE_TEMPLATES, type Endpoint, type V2Request } from './dispatch.js';
import { answerClientError, HttpError, sendError, statusOf, toRegistryError } from './errors.js';
import { httpMetrics, requestId, routeLabel } from './observe.js';
import { installOpsRoutes } from './ops-routes.js';
import { base } from './routes/base.js';
import { blobs } from './routes/blobs.js';
import { catalog, referrers, tags } from './routes/listings.js';
import { manifests } from './routes/manifests.js';
import { upload, uploadStart } from './routes/uploads.js';
import { extensions, manifestListing, namespace, tagDetails, tagHistory } from './routes/wharf.js';
import { installAccessControl, installRateLimit, type AuthOptions } from './auth.js';
import { installTokenIssuer } from './token-issuer.js';
import { installAdminRoutes } from './routes/admin.js';
import { installUi, type UiConfig } from './ui-static.js';
import { checkPageMarker } from './query-text.js';
import { originForm } from './absolute-form.js';

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
  /** Serve the browser UI at <prefix>/ui (ui.enabled); `uiDir` overrides where its build is read from. */
  ui?: boolean;
  uiDir?: string;
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
    /** A request to a /v2 route, matched once on arrival: the access check and the handler both read it. */
    v2?: V2Request;
    routeTemplate?: string;
    repository?: string;
  }
}

/** The Fastify server with Wharf's settings: streamed bodies, OCI error JSON for what Node or Fastify refuse. */
function createServer(options: ApiOptions): FastifyInstance {
  const serverOptions = options.maxHeaderBytes ? { maxHeaderSize: options.maxHeaderBytes } : {};
  const app = Fastify({
    ...(options.tls ? { https: { ...options.tls, ...serverOptions } } : { http: serverOptions }),
    loggerInstance: options.logger as FastifyBaseLogger,
    // Behind a trusted proxy request.protocol, request.host and request.ip come from X-Forwarded-*.
    trustProxy: options.trustedProxies?.length ? options.trustedProxies : false,
    // One log line per request, written by the onResponse hook in buildApi.
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
    rewriteUrl: (req) => originForm(req),
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
  return app;
}

export function buildApi(options: ApiOptions): FastifyInstance {
  const app = createServer(options);
  const metrics = httpMetrics();
  const v2 = `${options.prefix}/v2`;

  app.addHook('onRequest', async (request, reply) => {
    reply.header('docker-distribution-api-version', 'registry/2.0');
    reply.header('x-request-id', String(request.id));
    request.raw.setTimeout(options.bodyTimeoutMs);
    metrics.started(reply);
  });
  installRateLimit(app, options.auth?.rateLimit);
  app.addHook('onRequest', async (request) => {
    // Which route the router picked, not how the raw URL is spelt: it decodes (/v%32/ is /v2/).
    const route = request.routeOptions.url;
    if (route !== `${v2}/` && route !== `${v2}/*`) return;
    const match = matchV2Url(request.raw.url ?? '', v2);
    if (!match) throw new RegistryError('NAME_INVALID', 'malformed path');
    request.v2 = match;
  });
  if (options.auth) {
    installAccessControl(app, options.auth, options.prefix);
    if (options.auth.issuer) installTokenIssuer(app, options.auth.issuer, options.auth, options.prefix);
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
    if (statusOf(registryError) >= 500 && !(err instanceof RegistryError)) {
      // PostgreSQL or the store being down is not a bug: say which, and when to come back.
      const named = unavailableDependency(err);
      const down = named ? [named] : (await options.health.check()).checks.filter((c) => c.required && !c.ok).map((c) => c.name);
      if (down.length > 0) registryError = unavailableError(down);
    }
    if (registryError.code === 'UNAVAILABLE') request.log.warn({ err: (err as Error).message, detail: registryError.detail }, 'service unavailable');
    else if (statusOf(registryError) >= 500) request.log.error({ err }, 'request failed');
    else request.log.debug({ err: registryError.message, code: registryError.code }, 'request refused');
    // A body we did not read cannot be left in the connection.
    if (!request.raw.complete) reply.header('connection', 'close');
    return sendError(reply, registryError);
  });

  app.setNotFoundHandler((_request, reply) => sendError(reply, noSuchEndpoint()));

  const settings: CallSettings = {
    registry: options.registry,
    prefix: options.prefix,
    source: options.source,
    pageSize: options.pageSize,
    manifestMaxBytes: options.manifestMaxBytes,
  };
  const dispatch = async (request: FastifyRequest, reply: FastifyReply) => {
    // The match the access check used: the name authorized is the name served.
    const endpoint = request.v2?.endpoint;
    if (!endpoint) throw noSuchEndpoint();
    request.routeTemplate = ROUTE_TEMPLATES[endpoint.kind];
    checkPageMarker(endpoint.kind, request.v2?.query ?? new URLSearchParams());
    if ('name' in endpoint) request.repository = endpoint.name;
    const table = TABLES[endpoint.kind] as MethodTable<Endpoint>;
    const handler = table[request.method] as Handler | undefined;
    if (!handler) {
      const allowed = METHODS.filter((m) => table[m]).join(', ');
      throw new HttpError('UNSUPPORTED', `${request.method} is not supported here`, { status: 405, headers: { Allow: allowed } });
    }
    const call = callFor(request, reply, endpoint, request.v2?.query ?? new URLSearchParams(), settings);
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
  app.route({ method: ['GET', 'HEAD'], url: v2, handler: (_request, reply) => reply.redirect(`${v2}/`, 301), exposeHeadRoute: false });
  app.route({ method: [...METHODS], url: `${v2}/`, handler: dispatch, exposeHeadRoute: false });
  app.route({ method: [...METHODS], url: `${v2}/*`, handler: dispatch, exposeHeadRoute: false });
  installOpsRoutes(app, options);
  installAdminRoutes(app, options.registry, options.prefix);
  if (options.ui) installUi(app, options.prefix, uiConfig(options), (message) => options.logger.warn(message), options.uiDir);
  return app;
}

/** How the UI signs in: through the built-in token service when this node serves it. */
function uiConfig(options: ApiOptions): UiConfig {
  const auth = options.auth;
  if (!auth || auth.mode === 'none') return { auth: 'none' };
  if (auth.mode === 'htpasswd') return { auth: 'htpasswd' };
  const builtIn = !auth.token.realm && auth.issuer !== undefined;
  return { auth: 'token', service: auth.token.service, ...(builtIn ? { tokenPath: `${options.prefix}/auth/token` } : {}) };
}

function noSuchEndpoint(): HttpError {
  return new HttpError('UNSUPPORTED', 'no such endpoint', { status: 404 });
}
