import type { IncomingMessage } from 'node:http';
import { RegistryError } from '../../libs/oci/index.js';
import type { ChunkInfo } from '../../libs/registry/index.js';

/** Whether the request carries a body at all. */
export function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

export function contentLength(req: IncomingMessage): number | undefined {
  const raw = req.headers['content-length'];
  if (raw === undefined) return undefined;
  if (!/^\d+$/.test(raw)) throw new RegistryError('SIZE_INVALID', 'invalid Content-Length', { detail: { contentLength: raw } });
  return Number(raw);
}

/** Content-Range of an upload chunk: `<start>-<end>`, inclusive (Distribution also accepts a `bytes` prefix). */
export function chunkInfo(req: IncomingMessage): ChunkInfo {
  const info: ChunkInfo = {};
  const length = contentLength(req);
  if (length !== undefined) info.length = length;
  const raw = req.headers['content-range'];
  if (raw !== undefined) {
    const m = /^(?:bytes[ =])?(\d+)-(\d+)(?:\/(?:\d+|\*))?$/.exec(raw.trim());
    if (!m) throw new RegistryError('RANGE_INVALID', 'invalid Content-Range', { detail: { contentRange: raw } });
    info.range = { start: Number(m[1]), end: Number(m[2]) };
  }
  return info;
}

export type RangeRequest = { start: number; end: number } | 'unsatisfiable' | undefined;

/** A single `bytes=` range against a blob of `size` bytes; other forms are ignored, as RFC 9110 allows. */
export function parseRange(header: string | undefined, size: number): RangeRequest {
  if (!header) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || end < start) return 'unsatisfiable';
  return { start, end };
}

/** Reads a small body (a manifest) into memory, refusing it as soon as it passes `limit` bytes. */
export async function readLimited(req: IncomingMessage, limit: number, tooLarge: () => Error): Promise<Buffer> {
  const declared = contentLength(req);
  if (declared !== undefined && declared > limit) throw tooLarge();
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of req) {
      total += (chunk as Buffer).length;
      if (total > limit) throw tooLarge();
      chunks.push(chunk as Buffer);
    }
  } catch (err) {
    if (err instanceof RegistryError) throw err;
    // The client hung up before its body was complete.
    throw new RegistryError('SIZE_INVALID', 'request body ended before it was complete', { detail: { received: total, declared: declared ?? null } });
  }
  if (declared !== undefined && total !== declared) {
    throw new RegistryError('SIZE_INVALID', `request body has ${total} bytes, ${declared} were declared`);
  }
  return Buffer.concat(chunks, total);
}
