import { manifests, proxyCache, repositories } from '../../metadata/index.js';
import { INDEX_TYPES, parseDigest } from '../../oci/index.js';
import { RemoteError, type RemoteManifest } from '../../remote/index.js';
import type { RequestContext } from '../context.js';
import type { RegistryDeps } from '../deps.js';
import { storeManifest } from './cache-writer.js';
import { proxyMetrics } from './metrics.js';
import { upstreamFailed } from './upstream-errors.js';
import type { ProxiedName } from './upstreams.js';

/**
 * Brings a subject's referrers from the upstream into the cache, at most once per ttl: the
 * upstream's referrers API, or where it has none (404, as Distribution 2.8.2) the tag schema's
 * `sha256-<hex>` index. Each referrer manifest is cached like any other, so the local referrers
 * listing (and everything else) sees them. An upstream failure leaves what is cached.
 */
export async function refreshReferrers(deps: RegistryDeps, proxied: ProxiedName, repository: string, digest: string, context: RequestContext): Promise<void> {
  const { upstream, remoteName } = proxied;
  if (remoteName === undefined) return;
  const ref = `referrers/${digest}`;
  const repositoryId = await repositories.findRepositoryId(deps.db, repository);
  const checked = repositoryId === undefined ? undefined : await proxyCache.lastChecked(deps.db, repositoryId, ref);
  if (checked && Date.now() - checked.getTime() < upstream.config.ttlMs) return;
  let listed: Array<{ digest?: unknown }>;
  try {
    const body = await upstream.remote.referrers(remoteName, digest);
    if (body) {
      listed = (JSON.parse(body.toString('utf8')) as { manifests?: Array<{ digest?: unknown }> }).manifests ?? [];
    } else {
      const { algorithm, hex } = parseDigest(digest);
      const fallback = await upstream.remote.manifest(remoteName, `${algorithm}-${hex}`, 'GET');
      listed =
        fallback?.payload && INDEX_TYPES.has(fallback.mediaType)
          ? ((JSON.parse(fallback.payload.toString('utf8')) as { manifests?: Array<{ digest?: unknown }> }).manifests ?? [])
          : [];
    }
    for (const entry of listed) {
      if (typeof entry.digest !== 'string') continue;
      if (await manifests.findManifest(deps.db, repository, { digest: entry.digest })) continue;
      const fetched: RemoteManifest | undefined = await upstream.remote.manifest(remoteName, entry.digest, 'GET');
      if (!fetched?.payload) continue;
      proxyMetrics.upstreamBytes.inc({ upstream: upstream.config.name }, fetched.payload.length);
      await storeManifest(deps, upstream, repository, { digest: fetched.digest, mediaType: fetched.mediaType, payload: fetched.payload }, undefined, context);
    }
  } catch (err) {
    if (err instanceof SyntaxError) {
      proxyMetrics.upstreamErrors.inc({ upstream: upstream.config.name, reason: 'protocol' });
      deps.warn(`upstream ${upstream.config.name}: referrers of ${remoteName}@${digest} are not JSON; serving what is cached`, err);
      return;
    }
    if (!(err instanceof RemoteError)) throw err;
    upstreamFailed(deps, upstream, err, `serving cached referrers of ${repository}@${digest}`);
    proxyMetrics.requests.inc({ upstream: upstream.config.name, kind: 'referrers', result: 'stale' });
    return;
  }
  const id = repositoryId ?? (await repositories.ensureRepository(deps.db, repository));
  await proxyCache.markChecked(deps.db, id, ref);
  proxyMetrics.requests.inc({ upstream: upstream.config.name, kind: 'referrers', result: checked ? 'revalidated' : 'miss' });
}
