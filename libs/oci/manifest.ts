import { parseDigest } from './digest.js';
import { RegistryError } from './errors.js';
import { findUnstorableText } from './text.js';
import { FOREIGN_LAYER_TYPES, IMAGE_MANIFEST_TYPES, INDEX_TYPES, MANIFEST_TYPES, baseMediaType } from './media-types.js';

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  urls?: string[];
  annotations?: Record<string, string>;
  artifactType?: string;
  platform?: unknown;
}

export type ReferenceKind = 'config' | 'layer' | 'manifest';

export interface ManifestReference {
  kind: ReferenceKind;
  descriptor: Descriptor;
}

/** What Wharf needs to know about a manifest to validate and index it. */
export interface ParsedManifest {
  mediaType: string;
  /** artifactType as the referrers API reports it: the field, else the config media type of an image manifest. */
  artifactType: string | null;
  configDigest: string | null;
  subject: Descriptor | null;
  annotations: Record<string, string> | null;
  references: ManifestReference[];
}

function invalid(message: string, detail?: unknown): RegistryError {
  return new RegistryError('MANIFEST_INVALID', message, { detail });
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function parseAnnotations(value: unknown, where: string): Record<string, string> | undefined {
  if (value === undefined) return undefined;
  if (!isRecord(value) || Object.values(value).some((v) => typeof v !== 'string')) {
    throw invalid(`${where}: annotations must map strings to strings`);
  }
  return value as Record<string, string>;
}

function parseDescriptor(value: unknown, where: string): Descriptor {
  if (!isRecord(value)) throw invalid(`${where}: descriptor must be an object`);
  const { mediaType, digest, size, urls, artifactType } = value;
  if (typeof mediaType !== 'string' || mediaType === '') throw invalid(`${where}: mediaType is required`);
  if (typeof digest !== 'string') throw invalid(`${where}: digest is required`);
  try {
    parseDigest(digest);
  } catch {
    throw invalid(`${where}: invalid digest ${JSON.stringify(digest)}`);
  }
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
    throw invalid(`${where}: size must be a non-negative integer`);
  }
  const descriptor: Descriptor = { mediaType, digest, size };
  if (urls !== undefined) {
    if (!Array.isArray(urls) || urls.some((u) => typeof u !== 'string')) throw invalid(`${where}: urls must be strings`);
    descriptor.urls = urls as string[];
  }
  if (artifactType !== undefined) {
    if (typeof artifactType !== 'string') throw invalid(`${where}: artifactType must be a string`);
    descriptor.artifactType = artifactType;
  }
  const annotations = parseAnnotations(value.annotations, where);
  if (annotations) descriptor.annotations = annotations;
  if (value.platform !== undefined) descriptor.platform = value.platform;
  return descriptor;
}

/**
 * Parses manifest bytes and checks them against the OCI image spec and Docker schema 2.
 * `contentType` is the request's Content-Type; it decides the type when the body has no mediaType.
 */
export function parseManifest(bytes: Uint8Array, contentType: string | undefined): ParsedManifest {
  const parsed = parseManifestFields(bytes, contentType);
  // What is extracted is stored in text and jsonb columns (the bytes themselves go to bytea as they are).
  const where = findUnstorableText(parsed);
  if (where !== undefined) throw invalid('manifest strings must not contain U+0000 or unpaired surrogates', { field: where });
  return parsed;
}

function parseManifestFields(bytes: Uint8Array, contentType: string | undefined): ParsedManifest {
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch {
    throw invalid('manifest is not valid JSON');
  }
  if (!isRecord(doc)) throw invalid('manifest must be a JSON object');
  if (doc.schemaVersion !== 2) throw invalid('schemaVersion must be 2', { schemaVersion: doc.schemaVersion ?? null });

  const headerType = baseMediaType(contentType);
  const bodyType = typeof doc.mediaType === 'string' ? doc.mediaType : undefined;
  if (doc.mediaType !== undefined && bodyType === undefined) throw invalid('mediaType must be a string');
  if (bodyType !== undefined && headerType !== undefined && bodyType !== headerType) {
    throw invalid('mediaType does not match Content-Type', { mediaType: bodyType, contentType: headerType });
  }
  const mediaType = bodyType ?? headerType;
  if (mediaType === undefined) throw invalid('manifest media type is missing: set Content-Type or mediaType');
  if (!MANIFEST_TYPES.has(mediaType)) throw invalid(`unsupported manifest media type ${mediaType}`, { mediaType });

  const subject = doc.subject === undefined ? null : parseDescriptor(doc.subject, 'subject');
  const annotations = parseAnnotations(doc.annotations, 'manifest') ?? null;
  if (doc.artifactType !== undefined && typeof doc.artifactType !== 'string') throw invalid('artifactType must be a string');
  const declaredArtifactType = (doc.artifactType as string | undefined) ?? null;

  if (IMAGE_MANIFEST_TYPES.has(mediaType)) {
    if (doc.manifests !== undefined) throw invalid('an image manifest has no manifests field');
    const config = parseDescriptor(doc.config, 'config');
    if (!Array.isArray(doc.layers)) throw invalid('layers must be an array');
    const layers = doc.layers.map((layer, i) => parseDescriptor(layer, `layers[${i}]`));
    return {
      mediaType,
      artifactType: declaredArtifactType ?? config.mediaType,
      configDigest: config.digest,
      subject,
      annotations,
      references: [{ kind: 'config', descriptor: config }, ...layers.map((d) => ({ kind: 'layer' as const, descriptor: d }))],
    };
  }

  if (INDEX_TYPES.has(mediaType)) {
    if (doc.layers !== undefined || doc.config !== undefined) throw invalid('an index has no layers or config');
    if (!Array.isArray(doc.manifests)) throw invalid('manifests must be an array');
    const children = doc.manifests.map((m, i) => parseDescriptor(m, `manifests[${i}]`));
    return {
      mediaType,
      artifactType: declaredArtifactType,
      configDigest: null,
      subject,
      annotations,
      references: children.map((d) => ({ kind: 'manifest' as const, descriptor: d })),
    };
  }
  throw invalid(`unsupported manifest media type ${mediaType}`);
}

export function isForeignLayer(descriptor: Descriptor): boolean {
  return FOREIGN_LAYER_TYPES.has(descriptor.mediaType);
}
