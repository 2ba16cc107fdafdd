/** Reading manifests: which kind a media type is, what a referrer is for. */

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
  platform?: { os?: string; architecture?: string; variant?: string; 'os.version'?: string };
}

export interface Manifest {
  schemaVersion?: number;
  mediaType?: string;
  artifactType?: string;
  config?: Descriptor;
  layers?: Descriptor[];
  manifests?: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

export function isIndex(mediaType: string): boolean {
  return mediaType === 'application/vnd.oci.image.index.v1+json' || mediaType === 'application/vnd.docker.distribution.manifest.list.v2+json';
}

export const IMAGE_CONFIG_TYPES = ['application/vnd.oci.image.config.v1+json', 'application/vnd.docker.container.image.v1+json'];

export function platformText(p: Descriptor['platform']): string {
  if (!p) return '–';
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/') + (p['os.version'] ? ` (${p['os.version']})` : '');
}

/** What a referrer is, from its artifact type: signature, SBOM, attestation or other. */
export function referrerKind(artifactType: string | undefined): string {
  const t = (artifactType ?? '').toLowerCase();
  if (/sig|cosign|notary|sigstore/.test(t)) return 'signature';
  if (/sbom|spdx|cyclonedx|syft/.test(t)) return 'SBOM';
  if (/in-toto|intoto|attest|provenance|slsa|vex/.test(t)) return 'attestation';
  return 'artifact';
}

/** The short name of a media type: `application/vnd.oci.image.manifest.v1+json` → `oci image manifest`. */
export function shortType(mediaType: string | undefined): string {
  if (!mediaType) return '–';
  const known: Record<string, string> = {
    'application/vnd.oci.image.manifest.v1+json': 'OCI image manifest',
    'application/vnd.oci.image.index.v1+json': 'OCI image index',
    'application/vnd.docker.distribution.manifest.v2+json': 'Docker manifest v2',
    'application/vnd.docker.distribution.manifest.list.v2+json': 'Docker manifest list',
    'application/vnd.oci.image.config.v1+json': 'OCI image config',
    'application/vnd.docker.container.image.v1+json': 'Docker image config',
    'application/vnd.oci.image.layer.v1.tar+gzip': 'OCI layer (tar+gzip)',
    'application/vnd.oci.image.layer.v1.tar+zstd': 'OCI layer (tar+zstd)',
    'application/vnd.oci.image.layer.v1.tar': 'OCI layer (tar)',
    'application/vnd.docker.image.rootfs.diff.tar.gzip': 'Docker layer (tar+gzip)',
    'application/vnd.oci.empty.v1+json': 'empty',
  };
  return known[mediaType] ?? mediaType;
}
