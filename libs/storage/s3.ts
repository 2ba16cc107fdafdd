import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  type ListMultipartUploadsCommandOutput,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import type { Readable } from 'node:stream';
import { UNRECORDED_UPLOAD, type BlobStore, type ByteRange, type StoredObject, type UnfinishedUpload, type UploadState } from './blob-store.js';
import { failWhenIdle } from './idle-body.js';
import { S3GetClient } from './s3-get.js';

export interface S3BlobStoreOptions {
  /** Endpoint URL (MinIO, s3rver); absent: AWS for the region. */
  endpoint?: string;
  region: string;
  bucket: string;
  /** Prepended as is to every key, e.g. `registry/`; may be ''. */
  prefix: string;
  forcePathStyle: boolean;
  /** Absent: the AWS SDK's default credential chain. */
  credentials?: { accessKeyId: string; secretAccessKey: string };
  /** Default lifetime of presigned GET URLs; 900 s when absent. */
  presignExpirySeconds?: number;
  /** Size of every multipart part but the last (bytes); DEFAULT_PART_SIZE when absent, at least 5 MiB. */
  partSize?: number;
  /** Parts of one append sent at once while the next fills; 2 when absent. */
  partConcurrency?: number;
  /**
   * Whether requests carry checksums: 'when_supported' (the SDK's default, AWS) sends streamed
   * bodies aws-chunked with a trailing checksum, which Ceph RGW 16 answers 411 and s3rver stores
   * verbatim; 'when_required' does not. 'auto' when absent: when_supported without an endpoint (AWS), else when_required.
   */
  checksum?: 'auto' | 'when_required' | 'when_supported';
  /** Endpoint presigned URLs are made for, when clients reach S3 elsewhere than the nodes do. */
  publicEndpoint?: string;
  /**
   * Milliseconds one attempt of a call may wait for its answer, and a GetObject body for its next
   * bytes while its reader wants them; 30 s when absent.
   */
  timeoutMs?: number;
  /** Attempts per call on 5xx, throttling, timeouts and connection resets; 4 when absent. */
  maxAttempts?: number;
}

/** One uploaded part of the multipart upload. */
export interface S3Part {
  partNumber: number;
  etag: string;
  size: number;
}

/**
 * The upload's state, saved in the session row after each committed request. Bytes `[0, offset)` of
 * the upload are the `parts` in order, then the `tail` object: the bytes past the last full part.
 * Nothing lives in memory between requests.
 */
export interface S3UploadState {
  [field: string]: unknown;
  /** The multipart upload; it targets the final object, so completing it copies nothing. */
  uploadId: string;
  parts: S3Part[];
  /** Generation of the newest tail name this state's history used; each append takes the next one. */
  generation: number;
  /** Bytes past the last full part, as a small object `<object key>.tail.<generation>`. */
  tail: { key: string; size: number } | null;
  /** Tail objects of older generations: no committed state reads them any more; deleted best effort. */
  stale: string[];
}

export const DEFAULT_PART_SIZE = 8 * 1024 * 1024;
const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_MAX_ATTEMPTS = 4;
/** How long, and for how many keys, the driver reuses a presigned URL of its own blob reads. */
const SIGNED_GET_REUSE_MS = 60_000;
const SIGNED_GETS_KEPT = 1_024;
const MIN_PART_SIZE = 5 * 1024 * 1024;
/** S3's limit is 10,000 parts; full parts stop at 9,999 so the tail always fits as the last. */
const MAX_FULL_PARTS = 9_999;
/** Answers that mean "there is no multipart upload to abort here", or that the server cannot abort one (s3rver). */
const ABORT_IGNORABLE = new Set(['NoSuchUpload', 'NotImplemented', 'MethodNotAllowed']);

/**
 * Blob bytes in an S3 bucket (AWS, MinIO, s3rver). An upload is one multipart upload straight into
 * the blob's object. PATCH bodies of any size are cut into parts of `partSize` bytes, buffering one
 * part at a time; what is left at the end of a request becomes a part of its own when it has S3's
 * minimum part size, else it is kept as a small tail object
 * (never overwritten: each request writes a new generation) and prepended by the next request.
 * All part bookkeeping travels in the state, so the driver needs neither ListParts nor UploadPartCopy.
 */
// The SDK warns on Node 20 that releases after January 2027 will need Node 22; the version is pinned.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

export class S3BlobStore implements BlobStore {
  readonly client: S3Client;
  /** Signs presigned URLs for the public endpoint; the same client when there is none. */
  private readonly presigner: S3Client;
  private readonly bucket: string;
  private readonly prefix: string;
  private readonly partSize: number;
  private readonly partConcurrency: number;
  private readonly presignExpirySeconds: number;
  private readonly timeoutMs: number;
  /** Blob reads without the SDK's HTTP stack, on an http: endpoint; absent on https: (and AWS), which the SDK reads. */
  private readonly getter: S3GetClient | undefined;
  /** Presigned GetObject URLs the getter reuses for a while: signing one costs about as much CPU as moving 1 MiB. */
  private readonly signedGets = new Map<string, { url: URL; until: number }>();

  constructor(options: S3BlobStoreOptions) {
    this.bucket = options.bucket;
    this.prefix = options.prefix;
    this.partSize = options.partSize ?? DEFAULT_PART_SIZE;
    if (!Number.isSafeInteger(this.partSize) || this.partSize < MIN_PART_SIZE) {
      throw new Error(`S3 part size must be an integer of at least ${MIN_PART_SIZE} bytes, not ${options.partSize}`);
    }
    this.partConcurrency = options.partConcurrency ?? 2;
    if (!Number.isSafeInteger(this.partConcurrency) || this.partConcurrency < 1) throw new Error(`S3 part concurrency must be a positive integer, not ${options.partConcurrency}`);
    this.presignExpirySeconds = options.presignExpirySeconds ?? 900;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.client = new S3Client(clientConfig(options, options.endpoint));
    this.presigner = options.publicEndpoint ? new S3Client(clientConfig(options, options.publicEndpoint)) : this.client;
    const endpoint = options.endpoint ? new URL(options.endpoint) : undefined;
    if (endpoint?.protocol === 'http:') {
      this.getter = new S3GetClient(endpoint, {
        timeoutMs: this.timeoutMs,
        connectTimeoutMs: Math.min(5_000, this.timeoutMs),
        maxAttempts: options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS,
      });
    }
  }

  /** Closes the client's connections. */
  destroy(): void {
    this.client.destroy();
    this.getter?.destroy();
    if (this.presigner !== this.client) this.presigner.destroy();
  }

  private objectKey(key: string): string {
    return this.prefix + key;
  }

  private tailKey(key: string, generation: number): string {
    return `${this.objectKey(key)}.tail.${generation}`;
  }

  /** HEAD of the bucket: proves the endpoint answers, the credentials work and the bucket exists. */
  async ping(signal?: AbortSignal): Promise<void> {
    await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }), { abortSignal: signal });
  }

  async beginUpload(key: string): Promise<UploadState> {
    const created = await this.client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: this.objectKey(key), ContentType: 'application/octet-stream' }));
    if (!created.UploadId) throw new Error(`S3 returned no upload id for ${this.objectKey(key)}`);
    const state: S3UploadState = { uploadId: created.UploadId, parts: [], generation: 0, tail: null, stale: [] };
    return state;
  }

  async append(key: string, given: UploadState, offset: number, source: Readable): Promise<{ written: number; state: UploadState }> {
    const state = parseState(given);
    const committed = committedSize(state);
    if (offset !== committed) throw new Error(`S3 upload of ${key}: offset ${offset} does not match the ${committed} bytes its state records`);

    // Tails an earlier committed request replaced: nothing references them now.
    const cleanup = this.deleteQuietly(state.stale);
    // Up to partConcurrency parts may be on their way to S3 while the next fills: the request's
    // bytes keep coming in during an UploadPart instead of waiting for it. So at most
    // partConcurrency + 1 part buffers per request; parts are settled in order.
    const inFlight: Array<Promise<S3Part>> = [];
    const buffers: PartBuffer[] = [];
    const partBuffer = () => {
      const b = new PartBuffer(this.partSize);
      buffers.push(b);
      return b;
    };
    try {
      const generation = state.generation + 1;
      const parts = [...state.parts];
      let buffer = partBuffer();
      const spares: PartBuffer[] = [];
      const settleOldest = async () => {
        const part = inFlight.shift();
        if (part) parts.push(await part);
      };
      const settle = async () => {
        while (inFlight.length) await settleOldest();
      };
      const consume = async (chunk: Buffer) => {
        let at = 0;
        while (at < chunk.length) {
          at += buffer.fill(chunk, at);
          if (buffer.full) {
            if (inFlight.length >= this.partConcurrency) await settleOldest();
            const number = parts.length + inFlight.length + 1;
            if (number > MAX_FULL_PARTS) throw new Error(`S3 upload of ${key} exceeds ${MAX_FULL_PARTS} parts of ${this.partSize} bytes; raise the part size`);
            const full = buffer;
            buffer = spares.pop() ?? partBuffer();
            const sending = this.uploadPart(key, state.uploadId, number, full.bytes()).then((part) => {
              full.clear();
              spares.push(full);
              return part;
            });
            sending.catch(() => {}); // awaited by settle() or below; never an unhandled rejection
            inFlight.push(sending);
          }
        }
      };
      let written = 0;
      let tailLoaded = false;
      for await (const data of source) {
        const chunk = typeof data === 'string' ? Buffer.from(data) : (data as Buffer);
        if (chunk.length === 0) continue;
        if (!tailLoaded) {
          // Only now: a request that brings no bytes leaves the tail where it is.
          if (state.tail) await this.readTail(state.tail, consume);
          tailLoaded = true;
        }
        await consume(chunk);
        written += chunk.length;
      }

      await settle();
      if (!tailLoaded) {
        // No bytes: the state stays as it was, minus the stale tails now gone.
        return { written: 0, state: { ...state, stale: await cleanup } };
      }
      let tail: S3UploadState['tail'] = null;
      const stale = state.tail ? [state.tail.key] : [];
      if (buffer.length >= MIN_PART_SIZE) {
        // Big enough to be a part, even a middle one: no tail object to write now and read back at
        // the end (a whole layer in one PATCH, as skopeo and docker send it, ends here).
        parts.push(await this.uploadPart(key, state.uploadId, parts.length + 1, buffer.bytes()));
        buffer.clear();
        stale.push(this.tailKey(key, generation));
      } else if (buffer.length > 0) {
        tail = { key: this.tailKey(key, generation), size: buffer.length };
        await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: tail.key, Body: buffer.bytes(), ContentLength: buffer.length }));
      } else {
        // A failed earlier attempt from the same state may have left this generation's tail behind.
        stale.push(this.tailKey(key, generation));
      }
      const next: S3UploadState = { uploadId: state.uploadId, parts, generation, tail, stale: [...(await cleanup), ...stale] };
      return { written, state: next };
    } finally {
      // Never leave a request in flight behind a settled append.
      await Promise.allSettled(inFlight);
      for (const b of buffers) b.release();
      await cleanup;
    }
  }

  async completeUpload(key: string, given: UploadState, size: number): Promise<void> {
    const state = parseState(given);
    const committed = committedSize(state);
    if (size !== committed) throw new Error(`S3 upload of ${key}: completing at ${size} bytes, but its state records ${committed}`);
    const objectKey = this.objectKey(key);

    if (state.parts.length === 0) {
      // Small blob (the common case): one PutObject of the tail, and the multipart upload is dropped.
      const body = state.tail ? await this.tailBytes(state.tail) : Buffer.alloc(0);
      await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: objectKey, Body: body, ContentLength: body.length, ContentType: 'application/octet-stream' }));
      await this.abortMultipart(objectKey, state.uploadId).catch(() => {});
    } else {
      const parts = [...state.parts];
      if (state.tail) {
        const body = await this.tailBytes(state.tail);
        parts.push(await this.uploadPart(key, state.uploadId, parts.length + 1, body));
      }
      try {
        await this.client.send(
          new CompleteMultipartUploadCommand({
            Bucket: this.bucket,
            Key: objectKey,
            UploadId: state.uploadId,
            MultipartUpload: { Parts: parts.map((p) => ({ PartNumber: p.partNumber, ETag: p.etag })) },
          }),
        );
      } catch (err) {
        // A retried Complete whose first attempt succeeded (its answer lost) finds no upload:
        // the object of this size with this many parts is that first attempt's work.
        if ((err as { name?: string }).name !== 'NoSuchUpload' || !(await this.isCompleted(objectKey, size, parts.length))) throw err;
      }
    }
    await this.deleteQuietly(this.tailsOf(key, state));
  }

  async abortUpload(key: string, given: UploadState): Promise<void> {
    // Lenient: the registry also calls this with `{}` to drop an object that turned out redundant.
    const objectKey = this.objectKey(key);
    const tasks: Promise<unknown>[] = [this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: objectKey }))];
    const unrecorded = given.unrecorded === UNRECORDED_UPLOAD.unrecorded && typeof given.uploadId !== 'string';
    if (typeof given.uploadId === 'string') tasks.push(this.abortMultipart(objectKey, given.uploadId));
    else if (unrecorded) tasks.push(this.abortMultipartsOf(objectKey));
    let leftover: string[] = [];
    try {
      leftover = this.tailsOf(key, parseState(given));
    } catch {
      // Not a state this driver wrote: no tails to find, but for an unrecorded one the first
      // append's (generation 1), which that append writes when it ends with less than a part.
      if (unrecorded) leftover = [this.tailKey(key, 1)];
    }
    tasks.push(this.deleteQuietly(leftover));
    const failure = (await Promise.allSettled(tasks)).find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failure) throw failure.reason;
  }

  async read(key: string, range?: ByteRange): Promise<Readable> {
    if (this.getter) {
      const kept = this.signedGets.get(key);
      const reused = kept !== undefined && kept.until > Date.now();
      let body: Readable | undefined;
      try {
        body = await this.getter.get(reused ? kept.url : await this.signGet(key), range);
      } catch (err) {
        // Temporary credentials may expire before a kept URL does: signed anew, once.
        if (!reused || (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode !== 403) throw err;
        body = await this.getter.get(await this.signGet(key), range);
      }
      if (body) return body;
    }
    const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key), Range: range ? `bytes=${range.start}-${range.end}` : undefined }));
    if (!out.Body) throw new Error(`S3 returned no body for ${this.objectKey(key)}`);
    const body = out.Body as Readable;
    // The SDK's requestTimeout ends with the headers: a body S3 stops sending mid-way would hold
    // the client's GET and this socket forever.
    failWhenIdle(body, this.timeoutMs);
    return body;
  }

  /** A presigned GetObject URL for the nodes' own endpoint, kept for reuse. The Range header is not signed, which S3 accepts. */
  private async signGet(key: string): Promise<URL> {
    this.signedGets.delete(key);
    const url = new URL(await getSignedUrl(this.client, new GetObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key) }), { expiresIn: this.presignExpirySeconds }));
    this.signedGets.set(key, { url, until: Date.now() + Math.min(SIGNED_GET_REUSE_MS, (this.presignExpirySeconds * 1000) / 2) });
    // Insertion order: the first is the oldest.
    if (this.signedGets.size > SIGNED_GETS_KEPT) this.signedGets.delete(this.signedGets.keys().next().value!);
    return url;
  }

  async delete(key: string): Promise<void> {
    this.signedGets.delete(key);
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key) }));
  }

  async *list(): AsyncIterable<StoredObject> {
    let token: string | undefined;
    do {
      const page = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.prefix || undefined, ContinuationToken: token }));
      for (const object of page.Contents ?? []) {
        if (!object.Key) continue;
        const key = object.Key.slice(this.prefix.length);
        const tail = /^(.*)\.tail\.\d+$/.exec(key);
        yield { key, belongsTo: tail ? tail[1]! : key, size: object.Size ?? 0, modified: object.LastModified ?? new Date(0) };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  /** Multipart uploads in progress under the prefix (ListMultipartUploads), oldest pages first as S3 lists them. */
  async *listUnfinishedUploads(): AsyncIterable<UnfinishedUpload> {
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    do {
      const page = await this.client.send(
        new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: this.prefix || undefined, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }),
      );
      for (const upload of page.Uploads ?? []) {
        if (!upload.Key || !upload.UploadId) continue;
        yield { key: upload.Key.slice(this.prefix.length), uploadId: upload.UploadId, initiated: upload.Initiated ?? new Date(0) };
      }
      keyMarker = page.IsTruncated ? page.NextKeyMarker : undefined;
      uploadIdMarker = page.IsTruncated ? page.NextUploadIdMarker : undefined;
    } while (keyMarker);
  }

  /** Aborts one multipart upload, which frees its parts; one already gone is not an error. */
  async abortUnfinishedUpload(key: string, uploadId: string): Promise<void> {
    await this.abortMultipart(this.objectKey(key), uploadId);
  }

  /** A URL that GETs the object without credentials until it expires (made for the public endpoint when there is one). */
  async presignedGetUrl(key: string, expiresSeconds: number = this.presignExpirySeconds): Promise<string> {
    return getSignedUrl(this.presigner, new GetObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key) }), { expiresIn: expiresSeconds });
  }

  private async uploadPart(key: string, uploadId: string, partNumber: number, body: Buffer): Promise<S3Part> {
    const out = await this.client.send(
      new UploadPartCommand({ Bucket: this.bucket, Key: this.objectKey(key), UploadId: uploadId, PartNumber: partNumber, Body: body, ContentLength: body.length }),
    );
    if (!out.ETag) throw new Error(`S3 returned no ETag for part ${partNumber} of ${this.objectKey(key)}`);
    return { partNumber, etag: out.ETag, size: body.length };
  }

  /** Streams a tail object into `sink`, checking it holds the bytes the state says. */
  private async readTail(tail: { key: string; size: number }, sink: (chunk: Buffer) => void | Promise<void>): Promise<void> {
    const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: tail.key }));
    if (!out.Body) throw new Error(`S3 returned no body for ${tail.key}`);
    const body = out.Body as Readable;
    let read = 0;
    for await (const data of body) {
      const chunk = data as Buffer;
      read += chunk.length;
      if (read > tail.size) break;
      await sink(chunk);
    }
    if (read !== tail.size) throw new Error(`S3 object ${tail.key} should hold ${tail.size} bytes of the upload, not ${read > tail.size ? 'more' : read}`);
  }

  /** A whole tail object in memory (less than one part). */
  private async tailBytes(tail: { key: string; size: number }): Promise<Buffer> {
    const buffer = new PartBuffer(tail.size);
    await this.readTail(tail, (chunk) => void buffer.fill(chunk, 0));
    return buffer.bytes();
  }

  /**
   * Aborts every multipart upload of exactly `objectKey` (one whose id was never recorded); a
   * server that cannot list them (s3rver) has none to abort that this driver could name.
   */
  private async abortMultipartsOf(objectKey: string): Promise<void> {
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    do {
      let page: ListMultipartUploadsCommandOutput;
      try {
        page = await this.client.send(new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: objectKey, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }));
      } catch (err) {
        if (ABORT_IGNORABLE.has((err as { name?: string }).name ?? '')) return;
        throw err;
      }
      for (const upload of page.Uploads ?? []) {
        if (upload.Key === objectKey && upload.UploadId) await this.abortMultipart(objectKey, upload.UploadId);
      }
      keyMarker = page.IsTruncated ? page.NextKeyMarker : undefined;
      uploadIdMarker = page.IsTruncated ? page.NextUploadIdMarker : undefined;
    } while (keyMarker);
  }

  private abortMultipart(objectKey: string, uploadId: string): Promise<void> {
    return this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: objectKey, UploadId: uploadId })).then(
      () => undefined,
      (err: unknown) => {
        if (!ABORT_IGNORABLE.has((err as { name?: string }).name ?? '')) throw err;
      },
    );
  }

  private async isCompleted(objectKey: string, size: number, parts: number): Promise<boolean> {
    try {
      const head = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: objectKey }));
      return head.ContentLength === size && (head.ETag ?? '').endsWith(`-${parts}"`);
    } catch {
      return false;
    }
  }

  /** Every tail object an upload in `state` may have left: its own, the stale ones, and the next generation a failed request may have written. */
  private tailsOf(key: string, state: S3UploadState): string[] {
    const keys = new Set(state.stale);
    if (state.tail) keys.add(state.tail.key);
    keys.add(this.tailKey(key, state.generation + 1));
    return [...keys];
  }

  /** Deletes objects best effort; resolves with the keys that could not be deleted. */
  private async deleteQuietly(keys: string[]): Promise<string[]> {
    const results = await Promise.allSettled(keys.map((k) => this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: k }))));
    return keys.filter((_, i) => results[i]?.status === 'rejected');
  }
}

function clientConfig(options: S3BlobStoreOptions, endpoint: string | undefined): S3ClientConfig {
  const checksum = options.checksum === undefined || options.checksum === 'auto' ? (options.endpoint ? 'when_required' : 'when_supported') : options.checksum;
  const mode = checksum === 'when_required' ? 'WHEN_REQUIRED' : 'WHEN_SUPPORTED';
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return {
    endpoint,
    region: options.region,
    forcePathStyle: options.forcePathStyle,
    credentials: options.credentials,
    requestChecksumCalculation: mode,
    responseChecksumValidation: mode,
    // The SDK's standard mode: exponential backoff with full jitter (base 100 ms, 500 ms after
    // SlowDown/throttling, at most 20 s) on 5xx, throttling, timeouts and connection resets, within
    // a retry quota. Every body this driver sends is a Buffer, so a retry can send it again.
    retryMode: 'standard',
    maxAttempts: options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS,
    // Expect: 100-continue (the SDK's default above 2 MB) costs a round trip per part and, in this
    // SDK, a fresh connection each time: every part would open a new socket.
    expectContinueHeader: false,
    requestHandler: {
      // An endpoint that drops packets fails within seconds instead of the operating system's TCP timeout.
      connectionTimeout: Math.min(5_000, timeoutMs),
      // Each attempt's wait for the answer's headers (after its body is sent) is bounded, so a
      // stalled S3 fails the call (503 to the client) instead of hanging it. No socket idle timeout:
      // a slow client legitimately leaves a GET's S3 stream idle (read() watches the body instead).
      requestTimeout: timeoutMs,
      throwOnRequestTimeout: true,
    },
  };
}

function committedSize(state: S3UploadState): number {
  return state.parts.reduce((sum, p) => sum + p.size, 0) + (state.tail?.size ?? 0);
}

function parseState(state: UploadState): S3UploadState {
  const s = state as Partial<S3UploadState>;
  const ok =
    typeof s.uploadId === 'string' &&
    Array.isArray(s.parts) &&
    s.parts.every((p) => Number.isSafeInteger(p?.partNumber) && typeof p?.etag === 'string' && Number.isSafeInteger(p?.size)) &&
    Number.isSafeInteger(s.generation) &&
    (s.tail === null || (typeof s.tail?.key === 'string' && Number.isSafeInteger(s.tail.size))) &&
    Array.isArray(s.stale) &&
    s.stale.every((k) => typeof k === 'string');
  if (!ok) throw new Error(`not an S3 upload state: ${JSON.stringify(state).slice(0, 200)}`);
  return s as S3UploadState;
}

/**
 * Full-size part buffers kept between requests. Allocating a fresh multi-MiB buffer for every
 * part (and growing it by doubling) cost more CPU in a profile of a push than the copy into it:
 * page faults of new memory, re-copies on growth, and the garbage collector freeing them.
 * A few are kept; more than that go back to the collector.
 */
const POOLED_PARTS = 4;
const pool = new Map<number, Buffer[]>();

function takeBuffer(capacity: number): Buffer {
  return pool.get(capacity)?.pop() ?? Buffer.allocUnsafeSlow(capacity);
}

function giveBuffer(buf: Buffer): void {
  const free = pool.get(buf.length) ?? [];
  if (free.length < POOLED_PARTS) free.push(buf);
  pool.set(buf.length, free);
}

/** Past this many bytes a part buffer takes its full size at once (from the pool) instead of growing. */
const SMALL_PART = 1024 * 1024;

/** Bytes of one part being assembled; small until a request brings more than SMALL_PART, so small requests stay small. */
class PartBuffer {
  private buf: Buffer = Buffer.alloc(0);
  length = 0;

  constructor(private readonly capacity: number) {}

  get full(): boolean {
    return this.length === this.capacity;
  }

  /** Copies from `chunk[from..]` as much as fits; returns how much. */
  fill(chunk: Buffer, from: number): number {
    const n = Math.min(chunk.length - from, this.capacity - this.length);
    if (this.length + n > this.buf.length) {
      const need = this.length + n;
      const grown = need > SMALL_PART ? takeBuffer(this.capacity) : Buffer.allocUnsafe(Math.min(SMALL_PART, Math.max(need, this.buf.length * 2, 64 * 1024)));
      this.buf.copy(grown, 0, 0, this.length);
      this.buf = grown;
    }
    chunk.copy(this.buf, this.length, from, from + n);
    this.length += n;
    return n;
  }

  bytes(): Buffer {
    return this.buf.subarray(0, this.length);
  }

  clear(): void {
    this.length = 0;
  }

  /** Hands a full-size buffer back to the pool; the PartBuffer is empty afterwards. Only once no request reads bytes(). */
  release(): void {
    if (this.buf.length === this.capacity && this.capacity > SMALL_PART) giveBuffer(this.buf);
    this.buf = Buffer.alloc(0);
    this.length = 0;
  }
}
