import type { UploadSession } from '../../../libs/registry/index.js';
import { uploadRange } from '../errors.js';
import type { Endpoint } from '../dispatch.js';
import type { Call, MethodTable } from '../call.js';
import { chunkInfo, hasBody } from '../http.js';

type UploadsEndpoint = Extract<Endpoint, { kind: 'uploads' }>;
type UploadEndpoint = Extract<Endpoint, { kind: 'upload' }>;

function sessionReply(call: Call, session: UploadSession, status: 202 | 204) {
  return call.reply
    .code(status)
    .header('location', `${call.v2}/${session.repository}/blobs/uploads/${session.id}`)
    .header('range', uploadRange(session.offset))
    .header('docker-upload-uuid', session.id)
    .header('content-length', 0)
    .send();
}

function blobCreated(call: Call, name: string, digest: string) {
  return call.reply.code(201).header('location', `${call.v2}/${name}/blobs/${digest}`).header('docker-content-digest', digest).header('content-length', 0).send();
}

export const uploadStart: MethodTable<UploadsEndpoint> = {
  POST: async (call) => {
    const { name } = call.endpoint;
    const mount = call.query.get('mount');
    if (mount !== null) {
      const from = call.query.get('from') ?? undefined;
      if (await call.registry.uploads.mount(name, mount, from, call.context)) return blobCreated(call, name, mount);
      // Not mountable: fall through to an ordinary upload session, as the spec asks.
    }
    const digest = call.query.get('digest');
    if (digest !== null && mount === null) {
      const stored = await call.registry.uploads.monolithic(name, digest, call.request.raw, chunkInfo(call.request.raw), call.context);
      return blobCreated(call, name, stored);
    }
    return sessionReply(call, await call.registry.uploads.start(name), 202);
  },
};

export const upload: MethodTable<UploadEndpoint> = {
  GET: async (call) => sessionReply(call, await call.registry.uploads.status(call.endpoint.name, call.endpoint.id), 204),

  PATCH: async (call) => {
    const { name, id } = call.endpoint;
    return sessionReply(call, await call.registry.uploads.append(name, id, call.request.raw, chunkInfo(call.request.raw)), 202);
  },

  PUT: async (call) => {
    const { name, id } = call.endpoint;
    const raw = call.request.raw;
    const body = hasBody(raw) ? raw : undefined;
    const digest = await call.registry.uploads.complete(name, id, call.query.get('digest') ?? undefined, body, chunkInfo(raw), call.context);
    return blobCreated(call, name, digest);
  },

  DELETE: async (call) => {
    await call.registry.uploads.cancel(call.endpoint.name, call.endpoint.id);
    return call.reply.code(204).send();
  },
};
