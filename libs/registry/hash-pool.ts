import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

/**
 * Resumable SHA-256 on worker threads. hash-wasm can save and restore a running hash (so any node
 * continues an upload) but hashes at ~140 MB/s here and would block the event loop; node:crypto
 * is faster but cannot save its state. On workers, hashing overlaps the network and disk I/O of
 * the request and other requests keep being served.
 */
const HIGH_WATER = 8 * 1024 * 1024; // bytes handed to a worker but not yet hashed, before the request waits
const LOW_WATER = 2 * 1024 * 1024;

interface Pending {
  resolve(value: unknown): void;
  reject(err: Error): void;
}

class HashWorker {
  private worker: Worker;
  private readonly pending = new Map<number, Pending>();
  readonly sessions = new Map<number, HashSession>();
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

export class HashSession {
  private inFlight = 0;
  private waiters: Array<{ resolve(): void; reject(err: Error): void }> = [];
  private error: Error | undefined;

  constructor(
    private readonly worker: HashWorker,
    private readonly id: number,
  ) {}

  /** Queues bytes for hashing; returns a promise only when the caller should wait (backpressure). */
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

  /** The serialized state after every byte given so far. */
  async save(): Promise<Buffer> {
    if (this.error) throw this.error;
    return Buffer.from(await this.worker.request<Uint8Array>({ op: 'save', id: this.id }));
  }

  /** `sha256:<hex>` of every byte given so far; the session can go on. */
  async digest(): Promise<string> {
    if (this.error) throw this.error;
    return `sha256:${await this.worker.request<string>({ op: 'digest', id: this.id })}`;
  }

  close(): void {
    this.worker.sessions.delete(this.id);
    this.worker.post({ op: 'close', id: this.id });
  }
}

/** Resumes a hash from a saved state (null: a fresh hash) on one of the workers. */
export async function openHash(state: Buffer | null): Promise<HashSession> {
  workers ??= Array.from({ length: Math.max(1, Math.min(4, availableParallelism())) }, () => new HashWorker());
  const worker = workers[nextWorker++ % workers.length]!;
  const id = ++nextSession;
  const session = new HashSession(worker, id);
  worker.sessions.set(id, session);
  await worker.request({ op: 'open', id, state: state ? new Uint8Array(state) : null });
  return session;
}

/** Starts the workers and compiles the WASM now, so the first upload does not pay for it. */
export async function warmHashPool(): Promise<void> {
  (await openHash(null)).close();
}
