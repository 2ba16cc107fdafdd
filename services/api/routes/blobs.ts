import type { Endpoint } from '../dispatch.js';
import type { Call, MethodTable } from '../call.js';
import { HttpError } from '../errors.js';
import { parseRange } from '../http.js';

type BlobEndpoint = Extract<Endpoint, { kind: 'blob' }>;

async function fetch(call: Call<BlobEndpoint>, withBody: boolean) {
  const { name, digest } = call.endpoint;
  const blob = await call.registry.blobs.find(name, digest, { keep: !withBody, context: call.context });
  if (withBody && blob.redirect) {
    const location = await blob.redirect();
    call.registry.blobs.pulled(name, blob, call.context);
    return call.reply.code(307).header('location', location).header('docker-content-digest', blob.digest).send();
  }
  const range = parseRange(call.request.headers.range, blob.size);
  if (range === 'unsatisfiable') {
    throw new HttpError('RANGE_INVALID', 'requested range not satisfiable', {
      detail: { size: blob.size },
      headers: { 'Content-Range': `bytes */${blob.size}` },
    });
  }
  // Cacheable headers only on success: a shared cache must not keep a 416 for a year.
  const reply = call.reply
    .header('docker-content-digest', blob.digest)
    .header('etag', `"${blob.digest}"`)
    .header('accept-ranges', 'bytes')
    .header('cache-control', 'max-age=31536000')
    .type('application/octet-stream');
  if (range) {
    reply
      .code(206)
      .header('content-range', `bytes ${range.start}-${range.end}/${blob.size}`)
      .header('content-length', range.end - range.start + 1);
  } else {
    reply.code(200).header('content-length', blob.size);
  }
  if (!withBody) return reply.send();
  const stream = await blob.open(range);
  call.registry.blobs.pulled(name, blob, call.context);
  return reply.send(stream);
}

export const blobs: MethodTable<BlobEndpoint> = {
  GET: (call) => fetch(call, true),
  HEAD: (call) => fetch(call, false),
  DELETE: async (call) => {
    await call.registry.blobs.unlink(call.endpoint.name, call.endpoint.digest, call.context);
    return call.reply.code(202).send();
  },
};
