import { createHash, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { PassThrough, type Readable } from 'node:stream';
import { blobs, gc, proxyCache, repositories } from '../../metadata/index.js';
import { RegistryError, parseDigest } from '../../oci/index.js';
import { RemoteError, type RemoteBlob } from '../../remote/index.js';
import { UNRECORDED_UPLOAD, type ByteRange, type UploadState } from '../../storage/index.js';
import type { BlobHandle } from '../blob-service.js';
import type { RequestContext } from '../context.js';
import type { RegistryDeps } from '../deps.js';
import { commitBlob, linkCachedBlob } from './cache-writer.js';
import { proxyMetrics } from './metrics.js';
import { upstreamFailed } from './upstream-errors.js';
import type { ProxiedName, Upstream } from './upstreams.js';

/** Seconds a fill survives without a heartbeat before another request takes it over (proxy.filllease). */
export const DEFAULT_FILL_LEASE_SECONDS = 15;
const POLL_MS = 100;
/** A client that reads nothing for this long is cut off; the fill goes on for the others. */
const CLIENT_STALL_MS = 30_000;
/** Fills that fail in a row before a waiting request gives up. */
const MAX_FAILED_FILLS = 2;
/**
 * Upstream chunks (64 KiB off the socket) are gathered until about this many bytes and then
 * handed to the client and to the store in one go, chunk by chunk but in the same tick: the
 * response's socket is corked for the tick (one writev) and the store's file stream writes what
 * it was given with one writev too. An eighth of the system calls and of the hand-offs between
 * processes (each of which, on a busy machine, waits for a turn on a core), without copying the
 * bytes into a new 512 KiB buffer per batch: Buffer.concat's fresh allocation cost ~7 ms of CPU
 * per MiB here (its pages are new to the process every time), more than anything else on the path.
 * The first bytes wait for at most this many.
 */
const WRITE_BYTES = 512 << 10;
/** Bytes the store may fall behind the client before the upstream is read more slowly. */
const STORE_LAG_BYTES = 8 << 20;

function blobUnknown(digest: string): RegistryError {
  return new RegistryError('BLOB_UNKNOWN', 'blob unknown to registry', { detail: { digest } });
}

function fillFailed(upstream: Upstream, digest: string): RegistryError {
  return new RegistryError('UNAVAILABLE', `the fetch of this blob from upstream ${upstream.config.name} failed; try again`, {
    detail: { digest, upstream: upstream.config.name },
  });
}

function newStorageKey(): string {
  const id = randomUUID();
  return `${id.slice(0, 2)}/${id}`;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Blobs of proxied repositories that are not linked there yet. A blob the registry stores and the
 * repository's cached manifests name is linked at once. Otherwise one request, on any node, wins
 * the fill row in PostgreSQL and streams the upstream's bytes to its client and into the store at
 * the same time; the bytes are committed only once their digest and size check out. Every other
 * request for the digest waits for the fill to end and then reads the stored blob. A fill whose
 * heartbeat stops (its node died) is taken over, and the object it was writing is deleted.
 */
export class BlobCache {
  /** Fills this node leads, so requests here wait on them without polling. */
  private readonly leading = new Map<string, Promise<void>>();
  private readonly heartbeatMs: number;

  constructor(
    private readonly deps: RegistryDeps,
    private readonly node: string,
    private readonly leaseSeconds = DEFAULT_FILL_LEASE_SECONDS,
  ) {
    this.heartbeatMs = Math.max(200, (leaseSeconds * 1000) / 6);
  }

  /**
   * A GET in a proxied repository, from its first statement on: what BlobService serves itself
   * (a linked blob, a manifest of that digest) or the handle of a stored blob or of a fill this
   * request now leads, with one round trip before the upstream is asked. Anything else (a fill
   * under way elsewhere, a blob collected meanwhile) goes on as find() does.
   */
  async findOrFill(
    proxied: ProxiedName & { remoteName: string },
    repository: string,
    digest: string,
    context: RequestContext,
  ): Promise<blobs.BlobOrManifest | { handle: BlobHandle }> {
    // This node fills it already: wait in memory rather than on the fill row, then read what it stored.
    if (this.leading.has(digest)) return { handle: await this.find(proxied, repository, digest, false, context) };
    const owner = `${this.node}:${randomUUID()}`;
    const key = newStorageKey();
    const first = await proxyCache.findOrClaimFill(this.deps.db, repository, digest, owner, key, UNRECORDED_UPLOAD);
    if ('linked' in first) return { blob: first.linked };
    if ('manifest' in first) return { manifest: first.manifest };
    if ('stored' in first) {
      const linked = await this.linkStored(proxied.upstream, proxied.remoteName, repository, first.stored, false, context);
      if (linked) return { handle: linked };
    } else if (first.claimed) {
      const handle = await this.leadUnlessStored(proxied.upstream, proxied.remoteName, repository, digest, owner, key, context);
      if (handle) return { handle };
    }
    return { handle: await this.find(proxied, repository, digest, false, context, true) };
  }

  /** `linkedChecked`: the caller just found the blob not linked in `repository` (BlobService did), so the first pass skips that query. */
  async find(proxied: ProxiedName, repository: string, digest: string, head: boolean, context: RequestContext, linkedChecked = false): Promise<BlobHandle> {
    const remoteName = proxied.remoteName;
    if (remoteName === undefined) throw blobUnknown(digest);
    const upstream = proxied.upstream;
    let failedFills = 0;
    let waited = false;
    let checkLinked = !linkedChecked;
    for (;;) {
      if (checkLinked) {
        const linked = await blobs.findLinkedBlob(this.deps.db, repository, digest);
        if (linked) {
          proxyMetrics.requests.inc({ upstream: upstream.config.name, kind: 'blob', result: waited ? 'waited' : 'hit' });
          return this.stored(linked);
        }
      }
      checkLinked = true;
      if (head) {
        const stored = await proxyCache.findStoredBlob(this.deps.db, digest);
        if (stored) {
          const linked = await this.linkStored(upstream, remoteName, repository, stored, waited, context);
          if (linked) return linked;
          continue;
        }
        // A fill under way answers the HEAD once it is committed, without asking the upstream.
        const age = waited ? undefined : await proxyCache.fillHeartbeatAge(this.deps.db, digest);
        if (age === undefined || age > this.leaseSeconds) return this.headUpstream(upstream, remoteName, digest);
        waited = true;
        await this.waitForFill(digest);
        continue;
      }
      const here = this.leading.get(digest);
      if (here) {
        // This node fills it: wait in memory (until it is committed), then read it like any stored blob.
        waited = true;
        if (
          !(await here.then(
            () => true,
            () => false,
          ))
        )
          failedFills++;
        if (failedFills >= MAX_FAILED_FILLS) throw fillFailed(upstream, digest);
        continue;
      }
      const owner = `${this.node}:${randomUUID()}`;
      const key = newStorageKey();
      const claim = await proxyCache.claimFillUnlessStored(this.deps.db, digest, owner, key, UNRECORDED_UPLOAD);
      if ('stored' in claim) {
        const linked = await this.linkStored(upstream, remoteName, repository, claim.stored, waited, context);
        if (linked) return linked;
        continue;
      }
      if (claim.claimed) {
        const handle = await this.leadUnlessStored(upstream, remoteName, repository, digest, owner, key, context);
        if (handle) return handle;
        continue;
      }
      waited = true;
      const outcome = await this.waitForFill(digest);
      if (outcome === 'stale') {
        // Its node is gone: take the fill over (its object is queued for deletion with the takeover).
        if ((await proxyCache.takeOverFill(this.deps.db, digest, owner, key, UNRECORDED_UPLOAD, this.leaseSeconds)) === 'taken') {
          this.deps.warn(`blob fill of ${digest} had no heartbeat for ${this.leaseSeconds} s: taken over`, undefined);
          return this.lead(upstream, remoteName, repository, digest, owner, key, context);
        }
        continue;
      }
      if (!(await proxyCache.findStoredBlob(this.deps.db, digest))) failedFills++;
      if (failedFills >= MAX_FAILED_FILLS) throw fillFailed(upstream, digest);
    }
  }

  /**
   * A blob the registry stores, for a repository that does not link it: linked when the upstream
   * has it there. Undefined when it was collected meanwhile (fetch it again).
   */
  private async linkStored(
    upstream: Upstream,
    remoteName: string,
    repository: string,
    stored: { digest: string; size: number; storage_key: string },
    waited: boolean,
    context: RequestContext,
  ): Promise<BlobHandle | undefined> {
    if (!(await this.vouched(upstream, remoteName, repository, stored.digest))) throw blobUnknown(stored.digest);
    if (!(await linkCachedBlob(this.deps, upstream, repository, stored.digest, context))) return undefined;
    proxyMetrics.requests.inc({ upstream: upstream.config.name, kind: 'blob', result: waited ? 'waited' : 'hit' });
    return this.stored(stored);
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
      if (age > this.leaseSeconds) return 'stale';
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

  /**
   * A claim just won: it leads the fill, unless the claim waited on a fill that committed
   * meanwhile (storedSinceClaim), when the stored blob is linked instead. Undefined when that
   * blob was collected before it could be linked (look again).
   */
  private async leadUnlessStored(
    upstream: Upstream,
    remoteName: string,
    repository: string,
    digest: string,
    owner: string,
    key: string,
    context: RequestContext,
  ): Promise<BlobHandle | undefined> {
    const stored = await proxyCache.storedSinceClaim(this.deps.db, digest, owner);
    if (!stored) return this.lead(upstream, remoteName, repository, digest, owner, key, context);
    return this.linkStored(upstream, remoteName, repository, stored, true, context);
  }

  /** This request holds the fill: the upstream GET and the store's new object start together, then the bytes stream to the client and the store. */
  private async lead(upstream: Upstream, remoteName: string, repository: string, digest: string, owner: string, key: string, context: RequestContext): Promise<BlobHandle> {
    const begin = this.deps.store.beginUpload(key);
    begin.catch(() => {}); // awaited by the fill, or by abandon()
    let remote: RemoteBlob | undefined;
    try {
      remote = await upstream.remote.blob(remoteName, digest);
    } catch (err) {
      await abandon(this.deps, digest, owner, key, begin);
      if (!(err instanceof RemoteError)) throw err;
      throw upstreamFailed(this.deps, upstream, err, `blob ${remoteName}@${digest} not cached`);
    }
    if (!remote) {
      await abandon(this.deps, digest, owner, key, begin);
      throw blobUnknown(digest);
    }
    proxyMetrics.requests.inc({ upstream: upstream.config.name, kind: 'blob', result: 'miss' });
    const fill = new Fill(this.deps, upstream, repository, digest, { owner, key, begin, heartbeatMs: this.heartbeatMs }, remote, context);
    // Gone from `leading` before anyone awaiting it resumes: they then find the blob committed.
    const done: Promise<void> = fill.run().finally(() => {
      if (this.leading.get(digest) === done) this.leading.delete(digest);
    });
    this.leading.set(digest, done);
    done.catch(() => {});
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

/** Ends a fill that wrote nothing worth keeping: its row goes, its object is deleted (through the deletion queue, should that fail). */
async function abandon(deps: RegistryDeps, digest: string, owner: string, key: string, begin: Promise<UploadState>): Promise<void> {
  const deletion = await proxyCache.releaseFillDiscarding(deps.db, digest, owner, 'proxy-fill-failed').catch((err) => {
    deps.warn('blob fill row not released; it goes stale and is swept', err);
    return undefined;
  });
  const state = await begin.catch(() => undefined);
  if (state === undefined) return; // nothing was created
  try {
    await deps.store.abortUpload(key, state);
    if (deletion !== undefined) await gc.finishStorageDeletion(deps.db, deletion);
  } catch (err) {
    deps.warn(`storage object ${key} not removed now; the gc worker will retry`, err);
  }
}

interface FillLease {
  owner: string;
  /** The object the fill writes, named in its row. */
  key: string;
  /** The store's beginUpload of `key`, started with the upstream request. */
  begin: Promise<UploadState>;
  heartbeatMs: number;
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
    private readonly lease: FillLease,
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
    const { deps, digest, remote, lease } = this;
    const name = this.upstream.config.name;
    // The store's upload state (an S3 multipart upload id), until the fill row has it: a takeover
    // aborts the upload the row names. Recording it is bookkeeping, not part of the bytes' path:
    // it runs beside the store's writes, and a write PostgreSQL refuses (a statement that fails,
    // "too many clients") is retried with the next heartbeat instead of failing the fill, whose
    // client would otherwise be cut once the store fell STORE_LAG_BYTES behind.
    let unrecorded: UploadState | undefined;
    const beat = (what: string) => {
      const state = unrecorded;
      proxyCache.heartbeatFill(deps.db, digest, lease.owner, state).then(
        (held) => {
          if (!held) remote.body.destroy(new Error('the fill was taken over by another request'));
          else if (state !== undefined && unrecorded === state) unrecorded = undefined;
        },
        (err) => deps.warn(`blob fill ${what} not written; the next heartbeat tries again`, err),
      );
    };
    const heartbeat = setInterval(() => beat(unrecorded ? 'heartbeat and upload state' : 'heartbeat'), lease.heartbeatMs);
    const algorithm = parseDigest(digest).algorithm;
    const hash = createHash(algorithm);
    let size = 0;
    let badDigest = false;
    let clientDone = false;
    let committing = false;
    // The store lags behind the client by up to STORE_LAG_BYTES; its object may still be being created.
    const sink = new PassThrough({ writableHighWaterMark: STORE_LAG_BYTES, readableHighWaterMark: WRITE_BYTES });
    const appending = lease.begin.then((state) => {
      if (Object.keys(state).length > 0) {
        unrecorded = state;
        beat('upload state');
      }
      return deps.store.append(lease.key, state, 0, sink);
    });
    appending.catch(() => {}); // awaited below; a failure also fails the writes
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    /** Hands what was gathered to both sides; a promise when either is full (the next read waits for it). */
    const flush = (): Promise<unknown> | undefined => {
      const batch = pending;
      proxyMetrics.upstreamBytes.inc({ upstream: name }, pendingBytes);
      pending = [];
      pendingBytes = 0;
      let storeFull = false;
      for (const chunk of batch) storeFull = !sink.write(chunk) || storeFull;
      const clientBusy = this.toClient(batch);
      if (!storeFull) return clientBusy;
      const drained = Promise.race([once(sink, 'drain'), appending]);
      return clientBusy ? Promise.all([drained, clientBusy]) : drained;
    };
    try {
      try {
        for await (const chunk of remote.body as Readable) {
          const bytes = chunk as Buffer;
          size += bytes.length;
          if (remote.size !== undefined && size > remote.size) throw new Error(`upstream sent more than the ${remote.size} bytes it announced`);
          hash.update(bytes);
          pending.push(bytes);
          pendingBytes += bytes.length;
          const full = pendingBytes >= WRITE_BYTES ? flush() : undefined;
          if (full) await full;
        }
        if (pendingBytes > 0) await flush();
      } catch (err) {
        if (pendingBytes > 0) proxyMetrics.upstreamBytes.inc({ upstream: name }, pendingBytes);
        sink.destroy(err as Error);
        throw err;
      }
      if (remote.size !== undefined && size !== remote.size) throw new Error(`upstream sent ${size} of the ${remote.size} bytes it announced`);
      const actual = `${algorithm}:${hash.digest('hex')}`;
      if (actual !== digest) {
        badDigest = true;
        sink.destroy(new Error('digest mismatch'));
        throw new Error(`upstream sent bytes with digest ${actual}`);
      }
      // The client has every byte and they check out: it need not wait for the store to write and seal them.
      clientDone = true;
      this.client.end();
      sink.end();
      const { state } = await appending;
      await deps.store.completeUpload(lease.key, state, size);
      committing = true;
      const redundant = await commitBlob(deps, this.upstream, this.repository, { digest, size, key: lease.key }, { owner: lease.owner }, this.context);
      if (redundant !== undefined) await discardCopy(deps, lease.key, redundant);
    } catch (err) {
      remote.body.destroy();
      proxyMetrics.upstreamErrors.inc({ upstream: name, reason: badDigest ? 'digest' : 'unavailable' });
      deps.warn(`blob ${digest} from upstream ${name} not cached: ${(err as Error).message}`, err);
      if (!clientDone) this.client.destroy(err as Error);
      await appending.catch(() => {});
      if (committing) {
        // A commit whose answer was lost may have happened: its object then serves the blob. When
        // that cannot be told now, the row stays and goes stale; the takeover or sweep decides.
        const stored = await proxyCache.findStoredBlob(deps.db, digest).catch(() => 'unknown' as const);
        if (stored === 'unknown' || stored?.storage_key === lease.key) throw err;
      }
      await abandon(deps, digest, lease.owner, lease.key, lease.begin);
      throw err;
    } finally {
      clearInterval(heartbeat);
    }
  }

  /** Writes to the client while it reads; a promise when it is full. One that stalls too long is dropped, the fill goes on. */
  private toClient(chunks: Buffer[]): Promise<void> | undefined {
    let full = false;
    for (const chunk of chunks) {
      if (!this.attached || this.client.destroyed) return undefined;
      full = !this.client.write(chunk) || full;
    }
    return full ? this.drained() : undefined;
  }

  private async drained(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const stalled = new Promise<'stalled'>((resolve) => (timer = setTimeout(() => resolve('stalled'), CLIENT_STALL_MS)));
    // Removes the listeners of the waits that lost: one per wait would pile up on a slow client.
    const settled = new AbortController();
    const outcome = await Promise.race([
      once(this.client, 'drain', { signal: settled.signal }).then(
        () => 'drained' as const,
        () => 'gone' as const,
      ),
      once(this.client, 'close', { signal: settled.signal }).then(
        () => 'gone' as const,
        () => 'gone' as const,
      ),
      stalled,
    ]);
    clearTimeout(timer);
    settled.abort();
    if (outcome === 'stalled') this.detach();
  }
}

/** The registry had these bytes already (another fill won the race): this copy goes. */
async function discardCopy(deps: RegistryDeps, key: string, deletion: number): Promise<void> {
  try {
    await deps.store.abortUpload(key, {});
    await gc.finishStorageDeletion(deps.db, deletion);
  } catch (err) {
    deps.warn(`storage object ${key} not removed now; the gc worker will retry`, err);
  }
}
