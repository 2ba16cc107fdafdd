/**
 * Builds OCI content in memory and writes / reads OCI image layout directories
 * (https://github.com/opencontainers/image-spec/blob/main/image-layout.md): an `oci-layout` file,
 * `index.json`, and `blobs/sha256/<hex>`. Everything is generated here, so the tests need no fixtures
 * and no network. Layers are real gzip-compressed tar archives, so clients that inspect them are satisfied.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { OCI_CONFIG, OCI_EMPTY, OCI_INDEX, OCI_LAYER, OCI_MANIFEST, blobOf, sha256, type Blob } from './oci.js';

export const REF_NAME_ANNOTATION = 'org.opencontainers.image.ref.name';

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  platform?: Platform;
  annotations?: Record<string, string>;
}

/** A manifest (image, index or artifact) and everything it needs to be copied. */
export interface Content {
  mediaType: string;
  /** The exact manifest bytes; their digest is the content's digest. */
  bytes: Buffer;
  digest: string;
  size: number;
  /** Descriptor of this manifest, as an index (or index.json, or a subject field) would carry it. */
  descriptor: Descriptor;
  /**
   * Every blob the manifest needs, recursively, excluding its own bytes: for an image its config and
   * layers; for an index its child manifests' bytes and their blobs.
   */
  blobs: Blob[];
}

export interface Image extends Content {
  config: Blob;
  layers: Blob[];
  /** Digests of the uncompressed layer tars (the config's rootfs.diff_ids). */
  diffIds: string[];
}

export interface Index extends Content {
  manifests: Image[];
}

export interface Artifact extends Content {
  artifactType: string;
  config: Blob;
  layers: Blob[];
  subject: Descriptor;
}

function octal(value: number, width: number): string {
  // width - 1 octal digits, NUL-terminated.
  return value.toString(8).padStart(width - 1, '0') + '\0';
}

/**
 * A ustar archive holding one regular file. Header layout (POSIX.1-1988 ustar): name 0..100, mode 100,
 * uid 108, gid 116, size 124, mtime 136, chksum 148, typeflag 156, linkname 157, magic 257, version 263,
 * uname 265, gname 297, devmajor 329, devminor 337, prefix 345; then the data padded to 512 bytes and
 * two zero blocks.
 */
export function tarWithOneFile(name: string, data: Buffer, mtime = 1_700_000_000): Buffer {
  if (Buffer.byteLength(name) > 100) throw new Error(`tar entry name too long: ${name}`);
  const header = Buffer.alloc(512, 0);
  header.write(name, 0, 100, 'utf8');
  header.write(octal(0o644, 8), 100, 8, 'ascii');
  header.write(octal(0, 8), 108, 8, 'ascii');
  header.write(octal(0, 8), 116, 8, 'ascii');
  header.write(octal(data.length, 12), 124, 12, 'ascii');
  header.write(octal(mtime, 12), 136, 12, 'ascii');
  header.write('        ', 148, 8, 'ascii'); // checksum is computed with this field as spaces
  header.write('0', 156, 1, 'ascii'); // regular file
  header.write('ustar\0', 257, 6, 'ascii');
  header.write('00', 263, 2, 'ascii');
  header.write('root', 265, 32, 'ascii');
  header.write('root', 297, 32, 'ascii');
  let sum = 0;
  for (const byte of header) sum += byte;
  header.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'ascii');
  const padding = (512 - (data.length % 512)) % 512;
  return Buffer.concat([header, data, Buffer.alloc(padding, 0), Buffer.alloc(1024, 0)]);
}

export interface Layer {
  /** The gzip-compressed tar, as stored in the layout and the registry. */
  blob: Blob;
  /** Digest of the uncompressed tar. */
  diffId: string;
}

/** A gzip-compressed tar with one file of `size` random bytes. */
export function makeLayer(fileName = `file-${randomBytes(4).toString('hex')}.bin`, size = 256): Layer {
  const tar = tarWithOneFile(fileName, randomBytes(size));
  return { blob: blobOf(gzipSync(tar)), diffId: sha256(tar) };
}

function descriptorOf(mediaType: string, bytes: Buffer, extra: Partial<Descriptor> = {}): Descriptor {
  return { mediaType, digest: sha256(bytes), size: bytes.length, ...extra };
}

function uniqueBlobs(blobs: Blob[]): Blob[] {
  const seen = new Map<string, Blob>();
  for (const b of blobs) if (!seen.has(b.digest)) seen.set(b.digest, b);
  return [...seen.values()];
}

/** (a) An image manifest with `layers` gzip tar layers and a config whose diff_ids match them. */
export function buildImage(opts: { layers?: number; platform?: Platform; annotations?: Record<string, string> } = {}): Image {
  const platform = opts.platform ?? { os: 'linux', architecture: 'amd64' };
  const layers = Array.from({ length: opts.layers ?? 3 }, (_, i) => makeLayer(`layer-${i}-${randomBytes(4).toString('hex')}.bin`));
  const config = blobOf(
    JSON.stringify({
      created: '2024-01-01T00:00:00Z',
      architecture: platform.architecture,
      os: platform.os,
      ...(platform.variant ? { variant: platform.variant } : {}),
      config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], Labels: { nonce: randomBytes(8).toString('hex') } },
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
      history: layers.map((_, i) => ({ created: '2024-01-01T00:00:00Z', created_by: `wharf test layer ${i}` })),
    }),
  );
  const bytes = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: OCI_CONFIG, digest: config.digest, size: config.size },
      layers: layers.map((l) => ({ mediaType: OCI_LAYER, digest: l.blob.digest, size: l.blob.size })),
      ...(opts.annotations ? { annotations: opts.annotations } : {}),
    }),
  );
  const descriptor = descriptorOf(OCI_MANIFEST, bytes, opts.platform ? { platform } : {});
  return {
    mediaType: OCI_MANIFEST,
    bytes,
    digest: descriptor.digest,
    size: descriptor.size,
    descriptor,
    config,
    layers: layers.map((l) => l.blob),
    diffIds: layers.map((l) => l.diffId),
    blobs: uniqueBlobs([config, ...layers.map((l) => l.blob)]),
  };
}

/** (b) An image index with one image manifest per platform (default linux/amd64 and linux/arm64). */
export function buildIndex(
  platforms: Platform[] = [
    { os: 'linux', architecture: 'amd64' },
    { os: 'linux', architecture: 'arm64', variant: 'v8' },
  ],
  opts: { layers?: number } = {},
): Index {
  const manifests = platforms.map((platform) => buildImage({ layers: opts.layers ?? 1, platform }));
  const bytes = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: manifests.map((m) => m.descriptor),
    }),
  );
  const descriptor = descriptorOf(OCI_INDEX, bytes);
  return {
    mediaType: OCI_INDEX,
    bytes,
    digest: descriptor.digest,
    size: descriptor.size,
    descriptor,
    manifests,
    blobs: uniqueBlobs(manifests.flatMap((m) => [blobOf(m.bytes), ...m.blobs])),
  };
}

/** The OCI empty descriptor's content: `{}`, 2 bytes. */
export const EMPTY_CONFIG: Blob = blobOf('{}');

/**
 * (c) An artifact: an OCI image manifest with `artifactType`, the empty config, and a `subject`
 * pointing at another manifest. Its one layer is `payload` (JSON by default) under `layerMediaType`.
 */
export function buildArtifact(opts: { subject: Descriptor; artifactType?: string; payload?: Buffer; layerMediaType?: string; annotations?: Record<string, string> }): Artifact {
  const artifactType = opts.artifactType ?? 'application/vnd.example.sbom.v1';
  const payload = blobOf(opts.payload ?? Buffer.from(JSON.stringify({ sbom: 'example', nonce: randomBytes(8).toString('hex') })));
  const layerMediaType = opts.layerMediaType ?? 'application/vnd.example.sbom.v1+json';
  const subject: Descriptor = { mediaType: opts.subject.mediaType, digest: opts.subject.digest, size: opts.subject.size };
  const bytes = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      artifactType,
      config: { mediaType: OCI_EMPTY, digest: EMPTY_CONFIG.digest, size: EMPTY_CONFIG.size },
      layers: [{ mediaType: layerMediaType, digest: payload.digest, size: payload.size }],
      subject,
      annotations: opts.annotations ?? { 'org.opencontainers.image.created': '2024-01-01T00:00:00Z' },
    }),
  );
  const descriptor = descriptorOf(OCI_MANIFEST, bytes, { artifactType });
  return {
    mediaType: OCI_MANIFEST,
    bytes,
    digest: descriptor.digest,
    size: descriptor.size,
    descriptor,
    artifactType,
    config: EMPTY_CONFIG,
    layers: [payload],
    subject,
    blobs: [EMPTY_CONFIG, payload],
  };
}

function hexOf(digest: string): string {
  const [algorithm, hex] = digest.split(':');
  if (algorithm !== 'sha256' || !hex) throw new Error(`unsupported digest ${digest}`);
  return hex;
}

/**
 * Writes an OCI image layout at `dir` (created if needed) holding every entry of `refs`: the manifest
 * bytes and all blobs go under blobs/sha256, and index.json lists each manifest with its ref name
 * (`oci:<dir>:<ref>` in skopeo's syntax).
 */
export async function writeOciLayout(dir: string, refs: Record<string, Content>): Promise<void> {
  const blobDir = join(dir, 'blobs', 'sha256');
  await mkdir(blobDir, { recursive: true });
  await writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const all = uniqueBlobs(Object.values(refs).flatMap((c) => [blobOf(c.bytes), ...c.blobs]));
  for (const b of all) await writeFile(join(blobDir, hexOf(b.digest)), b.bytes);
  const index = {
    schemaVersion: 2,
    mediaType: OCI_INDEX,
    manifests: Object.entries(refs).map(([ref, c]) => ({
      ...c.descriptor,
      annotations: { ...c.descriptor.annotations, [REF_NAME_ANNOTATION]: ref },
    })),
  };
  await writeFile(join(dir, 'index.json'), JSON.stringify(index));
}

export interface ReadLayout {
  index: { schemaVersion: number; manifests: Descriptor[] };
  /** Descriptor that index.json lists under `ref`. */
  descriptorFor(ref: string): Descriptor | undefined;
  /** Blob bytes by digest; throws when missing. */
  blob(digest: string): Promise<Buffer>;
  /** Digests of every file under blobs/sha256 (their names, not re-hashed: see `verify`). */
  blobDigests: string[];
  /** Checks every blob's content hashes to its file name; returns the mismatching digests. */
  verify(): Promise<string[]>;
}

/** Reads an OCI image layout written by a client (or by writeOciLayout). */
export async function readOciLayout(dir: string): Promise<ReadLayout> {
  const layoutFile = JSON.parse(await readFile(join(dir, 'oci-layout'), 'utf8')) as { imageLayoutVersion?: string };
  if (typeof layoutFile.imageLayoutVersion !== 'string') throw new Error(`${dir}: oci-layout has no imageLayoutVersion`);
  const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as ReadLayout['index'];
  const blobDir = join(dir, 'blobs', 'sha256');
  const names = await readdir(blobDir).catch(() => [] as string[]);
  const blobDigests = names.map((n) => `sha256:${n}`).sort();
  const blob = (digest: string) => readFile(join(blobDir, hexOf(digest)));
  return {
    index,
    blobDigests,
    blob,
    descriptorFor: (ref) => index.manifests.find((m) => m.annotations?.[REF_NAME_ANNOTATION] === ref),
    verify: async () => {
      const bad: string[] = [];
      for (const d of blobDigests) if (sha256(await blob(d)) !== d) bad.push(d);
      return bad;
    },
  };
}
