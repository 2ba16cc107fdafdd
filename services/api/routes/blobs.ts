import type { OutgoingHttpHeaders } from 'node:http';
import { copiesToWritable, type CopiesToWritable } from '../../../libs/storage/index.js';
import type { FastifyReply } from 'fastify';
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
  if (copiesToWritable(stream)) return copyInto(reply, stream);
  return reply.send(stream);
}

/**
 * Writes the status line, the headers and the body straight into the response (reply.send would
 * pipe the stream, a fresh buffer per chunk). The onResponse hook still runs when it finishes. A
 * failure once the headers are out can only cut the connection, as a failed piped stream does.
 */
async function copyInto(reply: FastifyReply, stream: CopiesToWritable): Promise<void> {
  reply.hijack();
  const res = reply.raw;
  res.writeHead(reply.statusCode, reply.getHeaders() as OutgoingHttpHeaders);
  try {
    await stream.copyTo(res);
    res.end();
  } catch (err) {
    if (!res.destroyed) reply.log.warn({ err }, 'blob GET failed mid-body');
    res.destroy();
  }
}

export const blobs: MethodTable<BlobEndpoint> = {
  GET: (call) => fetch(call, true),
  HEAD: (call) => fetch(call, false),
  DELETE: async (call) => {
    await call.registry.blobs.unlink(call.endpoint.name, call.endpoint.digest, call.context);
    return call.reply.code(202).send();
  },
};
