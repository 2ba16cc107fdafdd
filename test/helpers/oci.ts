import { createHash, randomBytes } from 'node:crypto';

export function sha256(data: Uint8Array | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

export interface Blob {
  digest: string;
  size: number;
  /** Buffer<ArrayBuffer>, which fetch accepts as a body (a plain Buffer may sit on a SharedArrayBuffer). */
  bytes: Buffer<ArrayBuffer>;
}

export function blobOf(bytes: Buffer | string): Blob {
  // Buffers made here (randomBytes, zlib, Buffer.from) never sit on a SharedArrayBuffer.
  const b = typeof bytes === 'string' ? Buffer.from(bytes) : (bytes as Buffer<ArrayBuffer>);
  return { digest: sha256(b), size: b.length, bytes: b };
}

export function randomBlob(size: number): Blob {
  return blobOf(randomBytes(size));
}

/** Pushes a blob in one POST ?digest= request. */
export async function pushBlob(base: string, name: string, blob: Blob): Promise<Response> {
  const res = await fetch(`${base}/v2/${name}/blobs/uploads/?digest=${blob.digest}`, {
    method: 'POST',
    headers: { 'content-type': 'application/octet-stream', 'content-length': String(blob.size) },
    body: blob.bytes,
  });
  if (res.status !== 201) throw new Error(`pushBlob ${name} ${blob.digest}: ${res.status} ${await res.text()}`);
  return res;
}

export async function putManifest(base: string, name: string, reference: string, body: string | Buffer<ArrayBuffer>, mediaType: string): Promise<Response> {
  return fetch(`${base}/v2/${name}/manifests/${reference}`, { method: 'PUT', headers: { 'content-type': mediaType }, body });
}

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';
export const OCI_EMPTY = 'application/vnd.oci.empty.v1+json';

/** Pushes a config and `layers` random layers, then an image manifest under `reference`; returns its digest and bytes. */
export async function pushImage(
  base: string,
  name: string,
  reference: string,
  opts: { layers?: number; layerSize?: number; extra?: Record<string, unknown> } = {},
): Promise<{ digest: string; body: string; config: Blob; layers: Blob[] }> {
  const config = blobOf(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, nonce: randomBytes(8).toString('hex') }));
  const layers = Array.from({ length: opts.layers ?? 1 }, () => randomBlob(opts.layerSize ?? 1024));
  await pushBlob(base, name, config);
  for (const l of layers) await pushBlob(base, name, l);
  const body = JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: OCI_CONFIG, digest: config.digest, size: config.size },
    layers: layers.map((l) => ({ mediaType: OCI_LAYER, digest: l.digest, size: l.size })),
    ...opts.extra,
  });
  const res = await putManifest(base, name, reference, body, OCI_MANIFEST);
  if (res.status !== 201) throw new Error(`pushImage ${name}:${reference}: ${res.status} ${await res.text()}`);
  return { digest: sha256(body), body, config, layers };
}

export async function errorCode(res: Response): Promise<string | undefined> {
  const body = (await res.json()) as { errors?: Array<{ code: string }> };
  return body.errors?.[0]?.code;
}

/** GETs `url` (200 expected) and digests the body as it streams in, never holding it whole. */
export async function streamedDigest(url: string): Promise<string> {
  const res = await fetch(url);
  if (res.status !== 200) throw new Error(`${url}: ${res.status} ${await res.text()}`);
  const hash = createHash('sha256');
  for await (const chunk of res.body!) hash.update(chunk);
  return `sha256:${hash.digest('hex')}`;
}
