import { manifests, proxyCache, repositories, type ManifestLookup } from '../../metadata/index.js';
import { RegistryError } from '../../oci/index.js';
import { RemoteError, type RemoteManifest } from '../../remote/index.js';
import type { RequestContext } from '../context.js';
import type { RegistryDeps } from '../deps.js';
import { forgetTag, retag, storeManifest } from './cache-writer.js';
import { proxyMetrics } from './metrics.js';
import { upstreamFailed } from './upstream-errors.js';
import type { ProxiedName, Upstream } from './upstreams.js';

/** A manifest as ManifestService serves it. */
export interface ManifestRow {
  digest: string;
  media_type: string;
  size: number;
  payload?: Buffer;
}

function unknown(reference: string): RegistryError {
  return new RegistryError('MANIFEST_UNKNOWN', 'manifest unknown', { detail: { reference } });
}

/**
 * Manifests of proxied repositories. By digest: local, else fetched once and kept (a digest's
 * bytes never change). By tag: within the upstream's ttl served locally without asking it; after
 * that one HEAD decides (unchanged, moved, gone); when the upstream fails, the cached copy is served.
 */
export class ManifestCache {
  /** Requests for the same reference on this node share one upstream round trip. */
  private readonly inFlight = new Map<string, Promise<ManifestRow>>();

  constructor(private readonly deps: RegistryDeps) {}

  async get(proxied: ProxiedName, repository: string, ref: ManifestLookup, withPayload: boolean, context: RequestContext): Promise<ManifestRow> {
    const reference = 'tag' in ref ? ref.tag : ref.digest;
    if (proxied.remoteName === undefined) throw unknown(reference);
    const local = await this.local(repository, ref, withPayload);
    const upstream = proxied.upstream;
    const name = upstream.config.name;
    if (local && ('digest' in ref || isFresh(local.checked_at, upstream.config.ttlMs))) {
      proxyMetrics.requests.inc({ upstream: name, kind: 'manifest', result: 'hit' });
      this.touch(repository, local.digest, name);
      return local;
    }
    const key = `${repository}|${reference}`;
    let pending = this.inFlight.get(key);
    if (!pending) {
      pending = this.resolve(upstream, proxied.remoteName, repository, ref, local, context).finally(() => this.inFlight.delete(key));
      this.inFlight.set(key, pending);
    }
    const row = await pending;
    if (!withPayload) {
      const { payload: _payload, ...head } = row;
      return head;
    }
    return row.payload ? row : ((await this.local(repository, { digest: row.digest }, true)) ?? row);
  }

  private async local(
    repository: string,
    ref: ManifestLookup,
    withPayload: boolean,
  ): Promise<(ManifestRow & { checked_at?: Date | null; id: number; repository_id?: number }) | undefined> {
    if ('tag' in ref) return proxyCache.findCachedTag(this.deps.db, repository, ref.tag, withPayload);
    return withPayload ? manifests.findManifestWithPayload(this.deps.db, repository, ref) : manifests.findManifest(this.deps.db, repository, ref);
  }

  private touch(repository: string, digest: string, upstream: string): void {
    touchThrottled(this.deps, repository, 'manifest', digest, upstream);
  }

  private async resolve(
    upstream: Upstream,
    remoteName: string,
    repository: string,
    ref: ManifestLookup,
    local: (ManifestRow & { id: number; repository_id?: number }) | undefined,
    context: RequestContext,
  ): Promise<ManifestRow> {
    const name = upstream.config.name;
    if ('digest' in ref) {
      const fetched = await this.fetch(upstream, remoteName, ref.digest, 'GET');
      if (!fetched) throw unknown(ref.digest);
      await storeManifest(this.deps, upstream, repository, fetched as Required<RemoteManifest>, undefined, context);
      proxyMetrics.requests.inc({ upstream: name, kind: 'manifest', result: 'miss' });
      return { digest: fetched.digest, media_type: fetched.mediaType, size: fetched.size, payload: fetched.payload! };
    }
    const tag = ref.tag;
    if (!local) {
      const fetched = await this.fetch(upstream, remoteName, tag, 'GET');
      if (!fetched) throw unknown(tag);
      await storeManifest(this.deps, upstream, repository, fetched as Required<RemoteManifest>, { name: tag }, context);
      proxyMetrics.requests.inc({ upstream: name, kind: 'manifest', result: 'miss' });
      return { digest: fetched.digest, media_type: fetched.mediaType, size: fetched.size, payload: fetched.payload! };
    }
    // Cached but past its ttl: one HEAD says whether the tag moved.
    let head: RemoteManifest | undefined;
    try {
      head = await upstream.remote.manifest(remoteName, tag, 'HEAD');
    } catch (err) {
      if (!(err instanceof RemoteError)) throw err;
      upstreamFailed(this.deps, upstream, err, `serving cached ${repository}:${tag}`);
      proxyMetrics.requests.inc({ upstream: name, kind: 'manifest', result: 'stale' });
      return local;
    }
    const repositoryId = local.repository_id ?? (await repositories.findRepositoryId(this.deps.db, repository))!;
    if (!head) {
      if (upstream.config.onNotFound === 'forget') {
        await forgetTag(this.deps, upstream, repository, repositoryId, tag, context);
        proxyMetrics.requests.inc({ upstream: name, kind: 'manifest', result: 'revalidated' });
        throw unknown(tag);
      }
      // The upstream dropped the tag; the cache keeps serving what it had (onnotfound: serve).
      await proxyCache.markChecked(this.deps.db, repositoryId, tag);
      proxyMetrics.requests.inc({ upstream: name, kind: 'manifest', result: 'stale' });
      return local;
    }
    proxyMetrics.requests.inc({ upstream: name, kind: 'manifest', result: 'revalidated' });
    if (head.digest === local.digest) {
      await proxyCache.markChecked(this.deps.db, repositoryId, tag);
      this.touch(repository, local.digest, name);
      return local;
    }
    const known = await manifests.findManifest(this.deps.db, repository, { digest: head.digest });
    if (known) {
      await retag(this.deps, upstream, repository, known.id, known.digest, known.media_type, known.size, tag, context);
      return known;
    }
    // Moved to a digest not cached yet: fetch it by digest, so what is stored is exactly what HEAD named.
    let fetched: RemoteManifest | undefined;
    try {
      fetched = await this.fetch(upstream, remoteName, head.digest, 'GET');
    } catch (err) {
      if (!(err instanceof RegistryError) || err.code !== 'UNAVAILABLE') throw err;
      proxyMetrics.requests.inc({ upstream: name, kind: 'manifest', result: 'stale' });
      return local;
    }
    if (!fetched) return local;
    await storeManifest(this.deps, upstream, repository, fetched as Required<RemoteManifest>, { name: tag, was: local.digest }, context);
    return { digest: fetched.digest, media_type: fetched.mediaType, size: fetched.size, payload: fetched.payload! };
  }

  /** A GET or HEAD upstream; an upstream failure with nothing cached is a 503 that names the upstream. */
  private async fetch(upstream: Upstream, remoteName: string, reference: string, method: 'GET' | 'HEAD'): Promise<RemoteManifest | undefined> {
    try {
      const fetched = await upstream.remote.manifest(remoteName, reference, method);
      if (fetched?.payload) proxyMetrics.upstreamBytes.inc({ upstream: upstream.config.name }, fetched.payload.length);
      return fetched;
    } catch (err) {
      if (!(err instanceof RemoteError)) throw err;
      throw upstreamFailed(this.deps, upstream, err, `${remoteName}:${reference} not cached`);
    }
  }
}

function isFresh(checkedAt: Date | null | undefined, ttlMs: number): boolean {
  return checkedAt !== null && checkedAt !== undefined && Date.now() - checkedAt.getTime() < ttlMs;
}

/** Pull times for retention, written at most once a minute per repository and digest on this node. */
const lastTouched = new Map<string, number>();
const TOUCH_EVERY_MS = 60_000;

export function touchThrottled(deps: RegistryDeps, repository: string, kind: 'manifest' | 'blob', digest: string, upstream: string): void {
  const key = `${kind}|${repository}|${digest}`;
  const now = Date.now();
  if ((lastTouched.get(key) ?? 0) > now - TOUCH_EVERY_MS) return;
  if (lastTouched.size > 100_000) lastTouched.clear();
  lastTouched.set(key, now);
  proxyCache.touchPullByName(deps.db, repository, kind, digest, upstream).catch((err) => deps.warn('pull time of cached content not recorded', err));
}
