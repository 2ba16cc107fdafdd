import { tooLarge } from '../../../libs/registry/index.js';
import type { Endpoint } from '../dispatch.js';
import type { Call, MethodTable } from '../call.js';
import { readLimited } from '../http.js';

type ManifestEndpoint = Extract<Endpoint, { kind: 'manifest' }>;

async function fetch(call: Call<ManifestEndpoint>, withPayload: boolean) {
  const { name, reference } = call.endpoint;
  const m = await call.registry.manifests.get(name, reference, withPayload, call.context);
  call.reply.code(200).header('content-type', m.mediaType).header('docker-content-digest', m.digest).header('etag', `"${m.digest}"`).header('content-length', m.size);
  return call.reply.send(m.payload);
}

export const manifests: MethodTable<ManifestEndpoint> = {
  GET: (call) => fetch(call, true),
  HEAD: (call) => fetch(call, false),

  PUT: async (call) => {
    const { name, reference } = call.endpoint;
    const body = await readLimited(call.request.raw, call.manifestMaxBytes, () => tooLarge(call.manifestMaxBytes));
    const result = await call.registry.manifests.put(name, reference, body, call.request.headers['content-type'], call.context);
    call.reply.code(201).header('location', `${call.v2}/${name}/manifests/${result.digest}`).header('docker-content-digest', result.digest);
    if (result.subject) call.reply.header('oci-subject', result.subject);
    return call.reply.send();
  },

  DELETE: async (call) => {
    await call.registry.manifests.delete(call.endpoint.name, call.endpoint.reference, call.context);
    return call.reply.code(202).send();
  },
};
