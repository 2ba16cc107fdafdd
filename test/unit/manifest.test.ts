/** parseManifest: validation of image manifests and indexes (OCI and Docker schema 2), and what Wharf indexes of them. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RegistryError, parseManifest } from '../../libs/oci/index.js';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';
const d = (c: string) => `sha256:${c.repeat(64)}`;
const config = { mediaType: OCI_CONFIG, digest: d('c'), size: 10 };
const layer = { mediaType: OCI_LAYER, digest: d('1'), size: 20 };

const bytes = (doc: unknown) => Buffer.from(JSON.stringify(doc));
const image = (extra: Record<string, unknown> = {}) => ({ schemaVersion: 2, mediaType: OCI_MANIFEST, config, layers: [layer], ...extra });
const invalid = (doc: unknown, contentType: string | undefined, what: RegExp) =>
  assert.throws(
    () => parseManifest(typeof doc === 'string' ? Buffer.from(doc) : bytes(doc), contentType),
    (err) => err instanceof RegistryError && err.code === 'MANIFEST_INVALID' && what.test(err.message),
  );

describe('parseManifest: image manifests', () => {
  it('indexes config and layers, in order, and takes the config media type as artifactType', () => {
    const parsed = parseManifest(bytes(image()), OCI_MANIFEST);
    assert.equal(parsed.mediaType, OCI_MANIFEST);
    assert.equal(parsed.artifactType, OCI_CONFIG);
    assert.equal(parsed.configDigest, config.digest);
    assert.equal(parsed.subject, null);
    assert.equal(parsed.annotations, null);
    assert.deepEqual(parsed.references, [
      { kind: 'config', descriptor: config },
      { kind: 'layer', descriptor: layer },
    ]);
  });
  it('an explicit artifactType wins over the config media type', () =>
    assert.equal(parseManifest(bytes(image({ artifactType: 'application/vnd.example.sbom' })), OCI_MANIFEST).artifactType, 'application/vnd.example.sbom'));
  it('keeps the subject and annotations', () => {
    const subject = { mediaType: OCI_MANIFEST, digest: d('5'), size: 300 };
    const parsed = parseManifest(bytes(image({ subject, annotations: { a: 'b' } })), OCI_MANIFEST);
    assert.deepEqual(parsed.subject, subject);
    assert.deepEqual(parsed.annotations, { a: 'b' });
  });
  it('takes the media type from Content-Type when the body has none', () =>
    assert.equal(parseManifest(bytes({ schemaVersion: 2, config, layers: [] }), `${DOCKER_MANIFEST}; charset=utf-8`).mediaType, DOCKER_MANIFEST));
  it('takes the media type from the body when there is no Content-Type', () => assert.equal(parseManifest(bytes(image()), undefined).mediaType, OCI_MANIFEST));
  it('keeps descriptor urls, platform and annotations', () => {
    const foreign = { ...layer, urls: ['https://example.com/l'], annotations: { k: 'v' }, platform: { os: 'linux' } };
    assert.deepEqual(parseManifest(bytes(image({ layers: [foreign] })), OCI_MANIFEST).references[1]!.descriptor, foreign);
  });
});

describe('parseManifest: indexes', () => {
  it('indexes the children as manifests; no config, artifactType only if declared', () => {
    const child = { mediaType: OCI_MANIFEST, digest: d('2'), size: 400, platform: { os: 'linux', architecture: 'arm64' } };
    const parsed = parseManifest(bytes({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [child] }), OCI_INDEX);
    assert.equal(parsed.configDigest, null);
    assert.equal(parsed.artifactType, null);
    assert.deepEqual(parsed.references, [{ kind: 'manifest', descriptor: child }]);
  });
  it('an index with layers is refused', () => invalid({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [], layers: [] }, OCI_INDEX, /no layers or config/));
  it('an index without manifests is refused', () => invalid({ schemaVersion: 2, mediaType: OCI_INDEX }, OCI_INDEX, /manifests must be an array/));
  it('an image manifest with manifests is refused', () => invalid(image({ manifests: [] }), OCI_MANIFEST, /no manifests field/));
});

describe('parseManifest: refused', () => {
  const cases: Array<[string, unknown, string | undefined, RegExp]> = [
    ['not JSON', '{', OCI_MANIFEST, /not valid JSON/],
    ['a JSON array', [], OCI_MANIFEST, /JSON object/],
    ['schemaVersion 1', { ...image(), schemaVersion: 1 }, OCI_MANIFEST, /schemaVersion must be 2/],
    ['no schemaVersion', { mediaType: OCI_MANIFEST, config, layers: [] }, OCI_MANIFEST, /schemaVersion must be 2/],
    ['a non-string mediaType', { ...image(), mediaType: 7 }, OCI_MANIFEST, /mediaType must be a string/],
    ['mediaType differing from Content-Type', image(), DOCKER_MANIFEST, /does not match Content-Type/],
    ['no media type anywhere', { schemaVersion: 2, config, layers: [] }, undefined, /media type is missing/],
    ['an unknown media type', { ...image(), mediaType: 'text/plain' }, undefined, /unsupported manifest media type/],
    ['layers not an array', image({ layers: {} }), OCI_MANIFEST, /layers must be an array/],
    ['a config that is not an object', image({ config: 'x' }), OCI_MANIFEST, /config: descriptor must be an object/],
    ['a layer without mediaType', image({ layers: [{ digest: d('1'), size: 1 }] }), OCI_MANIFEST, /layers\[0\]: mediaType is required/],
    ['a malformed digest', image({ layers: [{ ...layer, digest: 'sha256:xyz' }] }), OCI_MANIFEST, /layers\[0\]: invalid digest/],
    ['a negative size', image({ layers: [{ ...layer, size: -1 }] }), OCI_MANIFEST, /size must be a non-negative integer/],
    ['a fractional size', image({ layers: [{ ...layer, size: 1.5 }] }), OCI_MANIFEST, /size must be a non-negative integer/],
    ['an unsafe size', image({ layers: [{ ...layer, size: 2 ** 53 }] }), OCI_MANIFEST, /size must be a non-negative integer/],
    ['urls that are not strings', image({ layers: [{ ...layer, urls: [1] }] }), OCI_MANIFEST, /urls must be strings/],
    ['annotations that are not strings', image({ annotations: { a: 1 } }), OCI_MANIFEST, /annotations must map strings to strings/],
    ['a non-string artifactType', image({ artifactType: 3 }), OCI_MANIFEST, /artifactType must be a string/],
    ['a subject that is not a descriptor', image({ subject: { digest: d('1') } }), OCI_MANIFEST, /subject: mediaType is required/],
  ];
  for (const [label, doc, contentType, what] of cases) {
    it(`${label}: MANIFEST_INVALID`, () => invalid(doc, contentType, what));
  }
});
