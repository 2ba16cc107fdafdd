import { createHash, randomBytes, randomFillSync } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
const OCI_LAYER_GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';

export interface Layout {
  dir: string;
  manifestDigest: string;
  /** Bytes a push moves: config, layers (compressed) and manifest. */
  totalBytes: number;
}

/** A ustar header for one regular file. */
function tarHeader(name: string, size: number): Buffer {
  const h = Buffer.alloc(512);
  const put = (value: string, offset: number, length: number) => h.write(value, offset, length, 'ascii');
  const octal = (n: number, length: number) => n.toString(8).padStart(length - 1, '0') + '\0';
  put(name, 0, 100);
  put(octal(0o644, 8), 100, 8);
  put(octal(0, 8), 108, 8);
  put(octal(0, 8), 116, 8);
  put(octal(size, 12), 124, 12);
  put(octal(Math.floor(Date.now() / 1000), 12), 136, 12);
  put('        ', 148, 8); // checksum is computed with this field as spaces
  put('0', 156, 1);
  put('ustar\u000000', 257, 8);
  let sum = 0;
  for (const b of h) sum += b;
  put(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8);
  return h;
}

/** A tar holding one file of `size` random bytes, produced 1 MiB at a time. */
async function* randomTar(size: number, onBytes: (b: Buffer) => void): AsyncGenerator<Buffer> {
  const emit = (b: Buffer) => (onBytes(b), b);
  yield emit(tarHeader('data.bin', size));
  const piece = 1024 * 1024;
  for (let done = 0; done < size; done += piece) yield emit(randomFillSync(Buffer.allocUnsafe(Math.min(piece, size - done))));
  const padding = (512 - (size % 512)) % 512;
  yield emit(Buffer.alloc(padding + 1024)); // pad to a block, then two zero blocks end the archive
}

/**
 * Writes one layer blob: a tar of random bytes, gzip-wrapped at level 0 (stored blocks). The bytes stay
 * incompressible, and since the blob is already gzip, skopeo sends it as is instead of compressing it itself.
 */
async function writeLayer(blobsDir: string, size: number): Promise<{ digest: string; size: number; diffId: string }> {
  const diff = createHash('sha256');
  const blob = createHash('sha256');
  let written = 0;
  const tmp = join(blobsDir, `.tmp-${randomBytes(6).toString('hex')}`);
  const tap = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      blob.update(chunk);
      written += chunk.length;
      cb(null, chunk);
    },
  });
  await pipeline(Readable.from(randomTar(size, (b) => diff.update(b))), createGzip({ level: 0 }), tap, createWriteStream(tmp));
  const hex = blob.digest('hex');
  await rename(tmp, join(blobsDir, hex));
  return { digest: `sha256:${hex}`, size: written, diffId: `sha256:${diff.digest('hex')}` };
}

async function writeBlob(blobsDir: string, bytes: string): Promise<{ digest: string; size: number }> {
  const hex = createHash('sha256').update(bytes).digest('hex');
  await writeFile(join(blobsDir, hex), bytes);
  return { digest: `sha256:${hex}`, size: Buffer.byteLength(bytes) };
}

/** An OCI image layout (oci-layout, index.json, blobs/sha256/...) with one image tagged `ref`, of `layers` fresh random layers. */
export async function writeLayout(dir: string, opts: { layers: number; layerBytes: number; ref: string }): Promise<Layout> {
  const blobsDir = join(dir, 'blobs', 'sha256');
  await mkdir(blobsDir, { recursive: true });
  const layers = [];
  for (let i = 0; i < opts.layers; i++) layers.push(await writeLayer(blobsDir, opts.layerBytes));
  const config = await writeBlob(
    blobsDir,
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: {},
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
      history: layers.map(() => ({ created_by: 'wharf bench' })),
    }),
  );
  const manifest = await writeBlob(
    blobsDir,
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: OCI_CONFIG, digest: config.digest, size: config.size },
      layers: layers.map((l) => ({ mediaType: OCI_LAYER_GZIP, digest: l.digest, size: l.size })),
    }),
  );
  await writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  await writeFile(
    join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{ mediaType: OCI_MANIFEST, digest: manifest.digest, size: manifest.size, annotations: { 'org.opencontainers.image.ref.name': opts.ref } }],
    }),
  );
  const totalBytes = config.size + manifest.size + layers.reduce((n, l) => n + l.size, 0);
  return { dir, manifestDigest: manifest.digest, totalBytes };
}
