import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { createSHA256 } from 'hash-wasm';
import { nativeSha256, nativeSha256Error, type NativeContext, type NativeSha256 } from './sha256-native.js';
import { HashStateError, decodeState, encodeState, fromHashWasm, initialHashState, isPortableState, toHashWasm } from './saved-hash-state.js';

/**
 * Resumable SHA-256 of upload sessions, saved in the portable form of saved-hash-state.ts so any node
 * continues any upload. Two implementations:
 * - native (native/sha256.c, OpenSSL inside the node binary): ~0.5 ms of CPU per MiB here, cheap
 *   enough to run in the request's own thread;
 * - the fallback when the addon was not built: hash-wasm (~2-7 ms per MiB) on worker threads, so
 *   hashing overlaps the request's I/O and other requests keep being served.
 */
export interface HashSession {
  /** Takes bytes in; returns a promise only when the caller should wait (backpressure). */
  update(chunk: Uint8Array): Promise<void> | undefined;
  /** The portable saved state after every byte given so far. */
  save(): Promise<Buffer>;
  /** `sha256:<hex>` of every byte given so far; the session can go on. */
  digest(): Promise<string>;
  close(): void;
}

export type HashImplementation = 'native' | 'wasm';
const HIGH_WATER = 8 * 1024 * 1024; // bytes handed to a worker but not yet hashed, before the request waits
const LOW_WATER = 2 * 1024 * 1024;

interface Pending {
  resolve(value: unknown): void;
  reject(err: Error): void;
}

class HashWorker {
  private worker: Worker;
  private readonly pending = new Map<number, Pending>();
  readonly sessions = new Map<number, WasmHashSession>();
  private seq = 0;

  constructor() {
    this.worker = this.spawn();
  }

  private spawn(): Worker {
    const worker = new Worker(new URL('./sha256-worker.mjs', import.meta.url));
    worker.on('message', (m: { op: string; seq?: number; id?: number; bytes?: number; value?: unknown; error?: string }) => {
      if (m.op === 'ack') {
        this.sessions.get(m.id!)?.acked(m.bytes!);
        return;
      }
      const p = this.pending.get(m.seq!);
      this.pending.delete(m.seq!);
      if (this.pending.size === 0) this.worker.unref();
      if (m.error !== undefined) p?.reject(new Error(m.error));
      else p?.resolve(m.value);
    });
    const fail = (err: Error) => {
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
      for (const s of this.sessions.values()) s.failed(err);
      this.sessions.clear();
      this.worker = this.spawn();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => code !== 0 && fail(new Error(`hash worker exited with ${code}`)));
    // After the listeners: attaching a 'message' listener refs the worker's port again.
    worker.unref();
    return worker;
  }

  request<T>(message: Record<string, unknown>): Promise<T> {
    const seq = ++this.seq;
    // Referenced while a reply is awaited, so a caller with nothing else to wait on (a script, a test) gets it.
    this.worker.ref();
    return new Promise<T>((resolve, reject) => {
      this.pending.set(seq, { resolve: resolve as (v: unknown) => void, reject });
      this.worker.postMessage({ ...message, seq });
    });
  }

  post(message: Record<string, unknown>, transfer?: ArrayBuffer[]): void {
    this.worker.postMessage(message, transfer);
  }
}

let workers: HashWorker[] | undefined;
let nextWorker = 0;
let nextSession = 0;

class NativeHashSession implements HashSession {
  constructor(
    private readonly addon: NativeSha256,
    private readonly context: NativeContext,
  ) {}

  update(chunk: Uint8Array): undefined {
    this.addon.update(this.context, chunk);
    return undefined;
  }

  async save(): Promise<Buffer> {
    return this.addon.save(this.context);
  }

  async digest(): Promise<string> {
    return `sha256:${this.addon.digest(this.context).toString('hex')}`;
  }

  close(): void {}
}

class WasmHashSession implements HashSession {
  private inFlight = 0;
  private waiters: Array<{ resolve(): void; reject(err: Error): void }> = [];
  private error: Error | undefined;

  constructor(
    private readonly worker: HashWorker,
    private readonly id: number,
  ) {}

  update(chunk: Uint8Array): Promise<void> | undefined {
    if (this.error) return Promise.reject(this.error);
    const copy = new Uint8Array(chunk); // an exact-size buffer the worker can take over
    this.inFlight += copy.byteLength;
    this.worker.post({ op: 'update', id: this.id, chunk: copy }, [copy.buffer as ArrayBuffer]);
    if (this.inFlight <= HIGH_WATER) return undefined;
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  acked(bytes: number): void {
    this.inFlight -= bytes;
    if (this.inFlight <= LOW_WATER) for (const w of this.waiters.splice(0)) w.resolve();
  }

  failed(err: Error): void {
    this.error = err;
    for (const w of this.waiters.splice(0)) w.reject(err);
  }

  async save(): Promise<Buffer> {
    if (this.error) throw this.error;
    const saved = await this.worker.request<Uint8Array>({ op: 'save', id: this.id });
    return encodeState(fromHashWasm(saved, await wasmTag()));
  }

  async digest(): Promise<string> {
    if (this.error) throw this.error;
    return `sha256:${await this.worker.request<string>({ op: 'digest', id: this.id })}`;
  }

  close(): void {
    this.worker.sessions.delete(this.id);
    this.worker.post({ op: 'close', id: this.id });
  }
}

let tag: Promise<Uint8Array> | undefined;

/** The 4-byte prefix this hash-wasm version puts on its saved states. */
function wasmTag(): Promise<Uint8Array> {
  tag ??= createSHA256().then((h) => h.init().save().slice(0, 4));
  return tag;
}

/** The implementation openHash uses by default: native when the addon loads. */
export function hashImplementation(): HashImplementation {
  return nativeSha256() ? 'native' : 'wasm';
}

/**
 * Resumes a hash from a saved state (null: a fresh hash). Takes the portable form and, from
 * sessions saved before it existed, hash-wasm's own; anything else is a HashStateError.
 */
export async function openHash(state: Buffer | null, implementation: HashImplementation = hashImplementation()): Promise<HashSession> {
  let portable = state ?? initialHashState();
  if (!isPortableState(portable)) {
    try {
      portable = encodeState(fromHashWasm(portable, await wasmTag()));
    } catch {
      throw new HashStateError('the saved SHA-256 state of this upload is in an unknown format');
    }
  }
  if (implementation === 'native') {
    const addon = nativeSha256();
    if (!addon) throw new Error('the native SHA-256 addon is not loaded');
    return new NativeHashSession(addon, addon.create(portable));
  }
  workers ??= Array.from({ length: Math.max(1, Math.min(4, availableParallelism())) }, () => new HashWorker());
  const worker = workers[nextWorker++ % workers.length]!;
  const id = ++nextSession;
  const session = new WasmHashSession(worker, id);
  worker.sessions.set(id, session);
  await worker.request({ op: 'open', id, state: toHashWasm(decodeState(portable), await wasmTag()) });
  return session;
}

/** Loads the addon, or starts the workers and compiles the WASM, now, so the first upload does not pay for it. */
export async function warmHashPool(): Promise<{ implementation: HashImplementation; nativeError?: string }> {
  (await openHash(null)).close();
  const implementation = hashImplementation();
  return implementation === 'native' ? { implementation } : { implementation, nativeError: nativeSha256Error() };
}
