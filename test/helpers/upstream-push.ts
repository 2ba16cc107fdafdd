import { createHash } from 'node:crypto';
import type { Blob } from './oci.js';
import { OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, blobOf, randomBlob } from './oci.js';
import type { Artifact, Content, Image, Index } from './oci-layout.js';

/**
 * Pushes with POST then PUT ?digest=, which every registry speaks (Distribution 2.8.2 answers a
 * monolithic POST ?digest= with 202 and an upload session instead).
 */
export async function pushBlobTwoStep(base: string, name: string, blob: Blob, headers: Record<string, string> = {}): Promise<void> {
  const head = await fetch(`${base}/v2/${name}/blobs/${blob.digest}`, { method: 'HEAD', headers });
  if (head.status === 200) return;
  const start = await fetch(`${base}/v2/${name}/blobs/uploads/`, { method: 'POST', headers });
  if (start.status !== 202) throw new Error(`upload start ${name}: ${start.status} ${await start.text()}`);
  const location = new URL(start.headers.get('location')!, base);
  location.searchParams.set('digest', blob.digest);
  const put = await fetch(location, {
    method: 'PUT',
    headers: { ...headers, 'content-type': 'application/octet-stream', 'content-length': String(blob.size) },
    body: blob.bytes,
  });
  if (put.status !== 201) throw new Error(`upload finish ${name} ${blob.digest}: ${put.status} ${await put.text()}`);
}

export async function putManifestBytes(base: string, name: string, reference: string, mediaType: string, bytes: Buffer, headers: Record<string, string> = {}): Promise<void> {
  const res = await fetch(`${base}/v2/${name}/manifests/${reference}`, { method: 'PUT', headers: { ...headers, 'content-type': mediaType }, body: new Uint8Array(bytes) });
  if (res.status !== 201) throw new Error(`manifest ${name}:${reference}: ${res.status} ${await res.text()}`);
}

function isIndex(content: Content): content is Index {
  return 'manifests' in content;
}

/** Pushes an image, an artifact or an index (children by digest first), tagged `tag` when given. */
export async function pushContent(base: string, name: string, content: Content | Image | Index | Artifact, tag?: string, headers: Record<string, string> = {}): Promise<void> {
  if (isIndex(content)) {
    for (const child of content.manifests) await pushContent(base, name, child, undefined, headers);
  } else {
    for (const blob of content.blobs) await pushBlobTwoStep(base, name, blob, headers);
  }
  await putManifestBytes(base, name, tag ?? content.digest, content.mediaType, content.bytes, headers);
}

/** An image manifest over given layer blobs (not tars: for clients that do not unpack). */
export function rawImage(layers: Blob[]): Content & { config: Blob; layers: Blob[] } {
  const config = blobOf(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, nonce: randomBlob(8).digest }));
  const bytes = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: OCI_CONFIG, digest: config.digest, size: config.size },
      layers: layers.map((l) => ({ mediaType: OCI_LAYER, digest: l.digest, size: l.size })),
    }),
  );
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  return {
    mediaType: OCI_MANIFEST,
    bytes,
    digest,
    size: bytes.length,
    descriptor: { mediaType: OCI_MANIFEST, digest, size: bytes.length },
    blobs: [config, ...layers],
    config,
    layers,
  };
}
