import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Registry, RequestContext } from '../../libs/registry/index.js';
import type { Endpoint } from './dispatch.js';

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
