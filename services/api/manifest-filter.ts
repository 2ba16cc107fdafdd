import { badParameter } from '../../libs/oci/index.js';
import type { ManifestFilter } from '../../libs/registry/index.js';

/** Reads the filters of GET /v2/<name>/_wharf/manifests from its query string. */
export function parseManifestFilter(query: URLSearchParams): ManifestFilter {
  const filter: ManifestFilter = {};
  const tagged = query.get('tagged');
  if (tagged !== null) {
    if (tagged !== 'true' && tagged !== 'false') throw badParameter('tagged must be true or false', { tagged });
    filter.tagged = tagged === 'true';
  }
  const artifactType = query.get('artifactType');
  if (artifactType !== null) {
    if (artifactType === '') throw badParameter('artifactType must not be empty', { artifactType });
    filter.artifactType = artifactType;
  }
  const annotations = query.getAll('annotation');
  if (annotations.length > 0) {
    filter.annotations = {};
    for (const pair of annotations) {
      const eq = pair.indexOf('=');
      if (eq <= 0) throw badParameter('annotation must be key=value', { annotation: pair });
      const key = pair.slice(0, eq);
      const value = pair.slice(eq + 1);
      if (key in filter.annotations && filter.annotations[key] !== value) {
        throw badParameter('annotation names one key with two values', { annotation: key });
      }
      filter.annotations[key] = value;
    }
  }
  return filter;
}
