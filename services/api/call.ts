import type { FastifyReply, FastifyRequest } from 'fastify';
import type { EventSource } from '../../libs/events/index.js';
import type { Registry, RequestContext } from '../../libs/registry/index.js';
import type { Endpoint } from './dispatch.js';
import { externalOrigin } from './external-origin.js';

/** Everything a handler needs for one request: the resolved endpoint and the registry behind it. */
export interface Call<E extends Endpoint = Endpoint> {
  request: FastifyRequest;
  reply: FastifyReply;
  endpoint: E;
  query: URLSearchParams;
  registry: Registry;
  context: RequestContext;
  /** Path of this registry's /v2 root, with any configured prefix: what Location and Link headers start with. */
  v2: string;
  pageSize: number;
  manifestMaxBytes: number;
}

export type Handler<E extends Endpoint = Endpoint> = (call: Call<E>) => Promise<unknown>;

/** Handlers of one endpoint kind by HTTP method. */
export type MethodTable<E extends Endpoint> = Partial<Record<string, Handler<E>>>;

/** What every call of one API shares. */
export interface CallSettings {
  registry: Registry;
  prefix: string;
  source: EventSource;
  pageSize: number;
  manifestMaxBytes: number;
}

/** Who asked and from where, for the events a request causes; and what its identity may read. */
function requestContext(request: FastifyRequest, settings: CallSettings): RequestContext {
  const headers = request.headers;
  const context: RequestContext = {
    urlBase: `${externalOrigin(request)}${settings.prefix}`,
    request: {
      id: String(request.id),
      addr: `${request.ip}:${request.socket.remotePort ?? 0}`,
      host: request.host ?? '',
      method: request.method,
      useragent: headers['user-agent'] ?? '',
    },
    actor: request.identity?.user !== undefined ? { name: request.identity.user } : {},
    source: settings.source,
  };
  const identity = request.identity;
  if (identity) context.mayRead = (repository) => identity.may('repository', repository, 'pull');
  return context;
}

export function callFor(request: FastifyRequest, reply: FastifyReply, endpoint: Endpoint, query: URLSearchParams, settings: CallSettings): Call {
  return {
    request,
    reply,
    endpoint,
    query,
    registry: settings.registry,
    context: requestContext(request, settings),
    v2: `${settings.prefix}/v2`,
    pageSize: settings.pageSize,
    manifestMaxBytes: settings.manifestMaxBytes,
  };
}
