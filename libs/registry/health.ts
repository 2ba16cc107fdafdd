import { isDatabaseUnavailable } from '../metadata/index.js';
import { RegistryError } from '../oci/index.js';
import { isStorageUnavailable } from '../storage/index.js';

/** The three things a node depends on, as /readyz and the error bodies name them. */
export type Dependency = 'postgresql' | 'storage' | 'nats';

export interface DependencyCheck {
  name: Dependency;
  ok: boolean;
  /** A node is ready only when every required dependency is. NATS is not required: the outbox buffers. */
  required: boolean;
  ms: number;
  error?: string;
}

export interface HealthReport {
  ready: boolean;
  checks: DependencyCheck[];
}

export interface HealthProbes {
  /** Rejects when PostgreSQL does not answer within `timeoutMs`. */
  postgresql(timeoutMs: number): Promise<void>;
  /** Rejects when the blob store does not answer before `signal` aborts. */
  storage(signal: AbortSignal): Promise<void>;
  /** Whether the bus can publish now; absent with the in-process bus (embedded mode), which has nothing to check. */
  nats?: () => boolean;
}

export interface HealthOptions {
  /** Deadline of each probe. */
  timeoutMs?: number;
  /** A report this fresh is reused: probes, scrapes and failing requests share one round of checks. */
  maxAgeMs?: number;
}

/** Seconds a client is asked to wait (Retry-After) while a dependency is down. */
export const RETRY_AFTER_SECONDS = 5;

/** Checks PostgreSQL, the blob store and NATS, each within a short deadline, and caches the result briefly. */
export class HealthChecker {
  private readonly timeoutMs: number;
  private readonly maxAgeMs: number;
  private last: { at: number; report: HealthReport } | undefined;
  private running: Promise<HealthReport> | undefined;

  constructor(
    private readonly probes: HealthProbes,
    options: HealthOptions = {},
  ) {
    this.timeoutMs = options.timeoutMs ?? 2_000;
    this.maxAgeMs = options.maxAgeMs ?? 1_000;
  }

  check(): Promise<HealthReport> {
    if (this.last && Date.now() - this.last.at < this.maxAgeMs) return Promise.resolve(this.last.report);
    this.running ??= this.run().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async run(): Promise<HealthReport> {
    const timed = async (name: Dependency, required: boolean, probe: () => Promise<void>): Promise<DependencyCheck> => {
      const started = performance.now();
      try {
        await probe();
        return { name, ok: true, required, ms: Math.round(performance.now() - started) };
      } catch (err) {
        return { name, ok: false, required, ms: Math.round(performance.now() - started), error: describe(err) };
      }
    };
    const checks = await Promise.all([
      timed('postgresql', true, () => this.probes.postgresql(this.timeoutMs)),
      timed('storage', true, () => this.probes.storage(AbortSignal.timeout(this.timeoutMs))),
      ...(this.probes.nats
        ? [
            timed('nats', false, async () => {
              if (!this.probes.nats!()) throw new Error('not connected; events wait in the outbox until it is back');
            }),
          ]
        : []),
    ]);
    const report = { ready: checks.every((c) => c.ok || !c.required), checks };
    this.last = { at: Date.now(), report };
    return report;
  }
}

function describe(err: unknown): string {
  const e = err as { name?: string; code?: string; message?: string };
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError') return 'no answer within the deadline';
  const message = e?.message || e?.name || String(err);
  return e?.code && !message.includes(e.code) ? `${e.code}: ${message}` : message;
}

/** Which dependency an error from a request says is down, if it says so. */
export function unavailableDependency(err: unknown): Dependency | undefined {
  // S3 errors first: they carry $metadata, and share socket error codes with PostgreSQL's.
  if (isStorageUnavailable(err)) return 'storage';
  if (isDatabaseUnavailable(err)) return 'postgresql';
  return undefined;
}

/** The 503 a request gets while a dependency it needs is down: OCI error JSON with Retry-After. */
export function unavailableError(down: Dependency[]): RegistryError {
  return new RegistryError('UNAVAILABLE', `service unavailable: ${down.join(' and ')} ${down.length > 1 ? 'are' : 'is'} not reachable; retry later`, {
    detail: { unavailable: down },
    retryAfterSeconds: RETRY_AFTER_SECONDS,
  });
}
