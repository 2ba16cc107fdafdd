import type { Endpoint } from '../dispatch.js';
import type { Call, MethodTable } from '../call.js';
import { linkNextPage, parsePage } from '../pagination.js';

type TagsEndpoint = Extract<Endpoint, { kind: 'tags' }>;
type CatalogEndpoint = Extract<Endpoint, { kind: 'catalog' }>;
type ReferrersEndpoint = Extract<Endpoint, { kind: 'referrers' }>;

function withNextLink(call: Call, path: string, n: number, next: string | undefined) {
  linkNextPage(call, path, n, next);
  return call.reply.code(200).type('application/json');
}

export const tags: MethodTable<TagsEndpoint> = {
  GET: async (call) => {
    const { name } = call.endpoint;
    const { n, last } = parsePage(call.query, call.pageSize);
    const page = await call.registry.discovery.tagsJson(name, n, last);
    // The body as one string, the page's JSON array passed through as PostgreSQL built it.
    return withNextLink(call, `${call.v2}/${name}/tags/list`, n, page.next)
      .type('application/json; charset=utf-8')
      .send(`{"name":${JSON.stringify(name)},"tags":${page.json}}`);
  },
};

export const catalog: MethodTable<CatalogEndpoint> = {
  GET: async (call) => {
    const { n, last } = parsePage(call.query, call.pageSize);
    const page = await call.registry.discovery.catalog(n, last);
    return withNextLink(call, `${call.v2}/_catalog`, n, page.next).send({ repositories: page.items });
  },
};

export const referrers: MethodTable<ReferrersEndpoint> = {
  GET: async (call) => {
    const artifactType = call.query.get('artifactType') ?? undefined;
    const index = await call.registry.discovery.referrers(call.endpoint.name, call.endpoint.digest, artifactType, call.context);
    if (artifactType !== undefined) call.reply.header('oci-filters-applied', 'artifactType');
    // A Buffer, so Fastify does not append a charset to the media type clients compare exactly.
    return call.reply
      .code(200)
      .type('application/vnd.oci.image.index.v1+json')
      .send(Buffer.from(JSON.stringify(index)));
  },
};
