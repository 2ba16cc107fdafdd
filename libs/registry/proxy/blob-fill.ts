import { createHash, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { PassThrough, type Readable } from 'node:stream';
import { blobs, gc, proxyCache, repositories } from '../../metadata/index.js';
import { RegistryError, parseDigest } from '../../oci/index.js';
import { RemoteError, type RemoteBlob } from '../../remote/index.js';
import type { ByteRange } from '../../storage/index.js';
import type { BlobHandle } from '../blob-service.js';
import type { RequestContext } from '../context.js';
import type { RegistryDeps } from '../deps.js';
import { commitBlob, linkCachedBlob } from './cache-writer.js';
import { proxyMetrics } from './metrics.js';
import { upstreamFailed } from './upstream-errors.js';
import type { ProxiedName, Upstream } from './upstreams.js';

/** A fill whose heartbeat is older than this is taken over: its node is gone. */
const STALE_SECONDS = 15;
const HEARTBEAT_MS = 2_000;
const POLL_MS = 100;
/** A client that reads nothing for this long is cut off; the fill goes on for the others. */
const CLIENT_STALL_MS = 30_000;
/** Fills that fail in a row before a waiting request gives up. */
const MAX_FAILED_FILLS = 2;

function blobUnknown(digest: string): RegistryError {
  return new RegistryError('BLOB_UNKNOWN', 'blob unknown to registry', { detail: { digest } });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Blobs of proxied repositories that are not linked there yet. A blob the registry stores and the
 * repository's cached manifests name is linked at once. Otherwise one request, on any node, wins
 * the fill row in PostgreSQL and streams the upstream's bytes to its client and into the store at
 * the same time; the bytes are committed only once their digest and size check out. Every other
 * request for the digest waits for the fill to end and then reads the stored blob.
 */
export class BlobCache {
  /** Fills this node leads, so requests here wait on them without polling. */
  private readonly leading = new Map<string, Promise<void>>();

  constructor(
    private readonly deps: RegistryDeps,
    private readonly node: string,
  ) {}

  async find(proxied: ProxiedName, repository: string, digest: string, head: boolean, context: RequestContext): Promise<BlobHandle> {
    const remoteName = proxied.remoteName;
    if (remoteName === undefined) throw blobUnknown(digest);
    const upstream = proxied.upstream;
    let failedFills = 0;
    let waited = false;
    for (;;) {
      const linked = await blobs.findLinkedBlob(this.deps.db, repository, digest);
      if (linked) {
        proxyMetrics.requests.inc({ upstream: upstream.config.name, kind: 'blob', result: waited ? 'waited' : 'hit' });
        return this.stored(linked);
      }
      const stored = await proxyCache.findStoredBlob(this.deps.db, digest);
      if (stored && (await this.vouched(upstream, remoteName, repository, digest))) {
        if (await linkCachedBlob(this.deps, upstream, repository, digest, context)) {
          proxyMetrics.requests.inc({ upstream: upstream.config.name, kind: 'blob', result: waited ? 'waited' : 'hit' });
          return this.stored(stored);
        }
        continue; // collected in between: fetch it again
      }
      if (head) {
        // A fill under way answers the HEAD once it is committed, without asking the upstream.
        const age = waited ? undefined : await proxyCache.fillHeartbeatAge(this.deps.db, digest);
        if (age === undefined || age > STALE_SECONDS) return this.headUpstream(upstream, remoteName, digest);
        waited = true;
        await this.waitForFill(digest);
        continue;
      }
      const owner = `${this.node}:${randomUUID()}`;
      if (await proxyCache.claimFill(this.deps.db, digest, owner, STALE_SECONDS)) {
        return this.lead(upstream, remoteName, repository, digest, owner, context);
      }
      waited = true;
      const outcome = await this.waitForFill(digest);
      if (outcome === 'ended' && !(await proxyCache.findStoredBlob(this.deps.db, digest))) failedFills++;
      if (failedFills >= MAX_FAILED_FILLS) {
        throw new RegistryError('UNAVAILABLE', `the fetch of this blob from upstream ${upstream.config.name} failed; try again`, {
          detail: { digest, upstream: upstream.config.name },
        });
      }
    }
  }

  /** Waits until no fill of `digest` is under way ('ended'), or the one under way has stopped renewing its heartbeat ('stale'). */
  private async waitForFill(digest: string): Promise<'ended' | 'stale'> {
    const here = this.leading.get(digest);
    if (here) {
      await here.catch(() => {});
      return 'ended';
    }
    for (;;) {
      const age = await proxyCache.fillHeartbeatAge(this.deps.db, digest);
      if (age === undefined) return 'ended';
      if (age > STALE_SECONDS) return 'stale';
      await sleep(POLL_MS);
    }
  }

  /** Whether the upstream has the blob in this repository: a cached manifest of it names the blob, or a HEAD says so. */
  private async vouched(upstream: Upstream, remoteName: string, repository: string, digest: string): Promise<boolean> {
    const repositoryId = await repositories.findRepositoryId(this.deps.db, repository);
    if (repositoryId !== undefined && (await proxyCache.referencedInRepository(this.deps.db, repositoryId, digest))) return true;
    try {
      return (await upstream.remote.blobSize(remoteName, digest)) !== undefined;
    } catch (err) {
      if (!(err instanceof RemoteError)) throw err;
      throw upstreamFailed(this.deps, upstream, err, `blob ${remoteName}@${digest} not cached here`);
    }
  }

  private stored(blob: { digest: string; size: number; storage_key: string }): BlobHandle {
    return { digest: blob.digest, size: blob.size, open: (range) => this.deps.store.read(blob.storage_key, range) };
  }

  /** A HEAD of an uncached blob asks the upstream for its size and caches nothing. */
  private async headUpstream(upstream: Upstream, remoteName: string, digest: string): Promise<BlobHandle> {
    let size: number | undefined;
    try {
      size = await upstream.remote.blobSize(remoteName, digest);
    } catch (err) {
      if (!(err instanceof RemoteError)) throw err;
      throw upstreamFailed(this.deps, upstream, err, `blob ${remoteName}@${digest} not cached`);
    }
    if (size === undefined) throw blobUnknown(digest);
    return {
      digest,
      size,
      open: async () => {
        throw new Error('a HEAD handle has no body');
      },
    };
  }

  /** This request holds the fill: start the upstream GET, then stream it to the client and the store. */
  private async lead(upstream: Upstream, remoteName: string, repository: string, digest: string, owner: string, context: RequestContext): Promise<BlobHandle> {
    const release = () => proxyCache.releaseFill(this.deps.db, digest, owner).catch((err) => this.deps.warn('blob fill row not released; it goes stale', err));
    let remote: RemoteBlob | undefined;
    try {
      remote = await upstream.remote.blob(remoteName, digest);
    } catch (err) {
      await release();
      if (!(err instanceof RemoteError)) throw err;
      throw upstreamFailed(this.deps, upstream, err, `blob ${remoteName}@${digest} not cached`);
    }
    if (!remote) {
      await release();
      throw blobUnknown(digest);
    }
    proxyMetrics.requests.inc({ upstream: upstream.config.name, kind: 'blob', result: 'miss' });
    const fill = new Fill(this.deps, upstream, repository, digest, owner, remote, context);
    const done = fill.run();
    this.leading.set(digest, done);
    done.catch(() => {}).finally(() => this.leading.delete(digest));
    if (remote.size === undefined) {
      // Without a Content-Length the response cannot start before the bytes are all here.
      fill.detach();
      await done;
      const blob = await proxyCache.findStoredBlob(this.deps.db, digest);
      if (!blob) throw blobUnknown(digest);
      return this.stored(blob);
    }
    return {
      digest,
      size: remote.size,
      open: async (range?: ByteRange) => {
        if (!range) return fill.client;
        fill.detach();
        await done;
        const blob = await proxyCache.findStoredBlob(this.deps.db, digest);
        if (!blob) throw blobUnknown(digest);
        return this.deps.store.read(blob.storage_key, range);
      },
    };
  }
}

/** One upstream blob streamed into the store and, while it reads, to the client that asked. */
class Fill {
  readonly client = new PassThrough({ highWaterMark: 1 << 20 });
  private attached = true;

  constructor(
    private readonly deps: RegistryDeps,
    private readonly upstream: Upstream,
    private readonly repository: string,
    private readonly digest: string,
    private readonly owner: string,
    private readonly remote: RemoteBlob,
    private readonly context: RequestContext,
  ) {
    // A client that hangs up leaves the fill running for everyone else.
    this.client.on('close', () => (this.attached = false));
    this.client.on('error', () => (this.attached = false));
  }

  /** The client reads from the store afterwards instead (a range request), or is gone. */
  detach(): void {
    this.attached = false;
    if (!this.client.destroyed) this.client.destroy();
  }

  async run(): Promise<void> {
    const { deps, digest, remote } = this;
    const name = this.upstream.config.name;
    const id = randomUUID();
    const key = `${id.slice(0, 2)}/${id}`;
    const heartbeat = setInterval(() => {
      proxyCache.heartbeatFill(deps.db, digest, this.owner).catch((err) => deps.warn('blob fill heartbeat not written', err));
    }, HEARTBEAT_MS);
    const algorithm = parseDigest(digest).algorithm;
    const hash = createHash(algorithm);
    let state: Record<string, unknown> = {};
    let begun = false;
    let size = 0;
    let badDigest = false;
    try {
      state = await deps.store.beginUpload(key);
      begun = true;
      const sink = new PassThrough({ highWaterMark: 1 << 20 });
      const appending = deps.store.append(key, state, 0, sink);
      appending.catch(() => {}); // awaited below; a failure also fails the writes
      try {
        for await (const chunk of remote.body as Readable) {
          const bytes = chunk as Buffer;
          size += bytes.length;
          if (remote.size !== undefined && size > remote.size) throw new Error(`upstream sent more than the ${remote.size} bytes it announced`);
          hash.update(bytes);
          proxyMetrics.upstreamBytes.inc({ upstream: name }, bytes.length);
          // Store and client take the chunk side by side; the next waits for the slower of the two.
          const stored = sink.write(bytes) ? undefined : Promise.race([once(sink, 'drain'), appending]);
          await Promise.all([stored, this.toClient(bytes)]);
        }
      } catch (err) {
        sink.destroy(err as Error);
        throw err;
      }
      sink.end();
      const written = await appending;
      state = written.state;
      if (remote.size !== undefined && size !== remote.size) throw new Error(`upstream sent ${size} of the ${remote.size} bytes it announced`);
      const actual = `${algorithm}:${hash.digest('hex')}`;
      if (actual !== digest) {
        badDigest = true;
        throw new Error(`upstream sent bytes with digest ${actual}`);
      }
      // The client has every byte and they check out: it need not wait for the store to seal them.
      this.client.end();
      await deps.store.completeUpload(key, state, size);
      const redundant = await commitBlob(deps, this.upstream, this.repository, { digest, size, key }, { owner: this.owner }, this.context);
      if (redundant !== undefined) await this.discard(key, {}, redundant);
    } catch (err) {
      remote.body.destroy();
      proxyMetrics.upstreamErrors.inc({ upstream: name, reason: badDigest ? 'digest' : 'unavailable' });
      deps.warn(`blob ${digest} from upstream ${name} not cached: ${(err as Error).message}`, err);
      this.client.destroy(err as Error);
      if (begun) {
        const deletion = await gc.queueStorageDeletion(deps.db, { storage_key: key, storage_state: state, size, reason: 'proxy-fill-failed' }).catch(() => undefined);
        await this.discard(key, state, deletion);
      }
      await proxyCache.releaseFill(deps.db, digest, this.owner).catch(() => {});
      throw err;
    } finally {
      clearInterval(heartbeat);
    }
  }

  /** Writes to the client while it reads; one that stalls too long is dropped, the fill goes on. */
  private async toClient(bytes: Buffer): Promise<void> {
    if (!this.attached || this.client.destroyed) return;
    if (this.client.write(bytes)) return;
    let timer: NodeJS.Timeout | undefined;
    const stalled = new Promise<'stalled'>((resolve) => (timer = setTimeout(() => resolve('stalled'), CLIENT_STALL_MS)));
    const outcome = await Promise.race([
      once(this.client, 'drain').then(
        () => 'drained' as const,
        () => 'gone' as const,
      ),
      once(this.client, 'close').then(() => 'gone' as const),
      stalled,
    ]);
    clearTimeout(timer);
    if (outcome === 'stalled') this.detach();
  }

  private async discard(key: string, state: Record<string, unknown>, deletion: number | undefined): Promise<void> {
    try {
      await this.deps.store.abortUpload(key, state);
      if (deletion !== undefined) await gc.finishStorageDeletion(this.deps.db, deletion);
    } catch (err) {
      this.deps.warn(`storage object ${key} not removed now; the gc worker will retry`, err);
    }
  }
}
