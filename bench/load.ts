import autocannon, { type Client } from 'autocannon';

export interface LoadResult {
  reqPerSec: number;
  p50: number;
  p99: number;
  /** Response bytes per second (body and headers), MiB/s. */
  mibPerSec: number;
  requests: number;
  non2xx: number;
  errors: number;
}

export interface LoadOptions {
  method: 'GET' | 'HEAD';
  headers?: Record<string, string>;
  connections: number;
  /** Measured seconds per target, split into two halves. */
  seconds: number;
  warmupSeconds: number;
}

// Two fixes to autocannon 8's response handling, applied to its http-parser-js parser
// (HTTPParser.kOnHeadersComplete = 2, kOnBody = 3):
// - it does not tell the parser that a HEAD response has no body, so with a non-zero Content-Length the
//   parser waits for bytes that never come and every HEAD times out: the headers callback returns true
//   ("skip the body") for HEAD;
// - it decodes every body chunk into a string and appends it (`body += chunk`), which caps a 1 MiB
//   binary blob at ~30 MiB/s on the client side: the body callback is made a no-op. Bytes are still
//   counted from the socket, and each case's body is checked once before the load starts.
const K_ON_HEADERS_COMPLETE = 2;
const K_ON_BODY = 3;

function lightParser(head: boolean) {
  return (client: Client): void => {
    // setupClient runs inside the Client constructor, before it installs its own callbacks.
    process.nextTick(() => {
      client.parser[K_ON_BODY] = () => {};
      if (!head) return;
      const onHeadersComplete = client.parser[K_ON_HEADERS_COMPLETE] as (info: unknown) => void;
      client.parser[K_ON_HEADERS_COMPLETE] = (info: unknown) => {
        onHeadersComplete(info);
        return true;
      };
    });
  };
}

/** Raw counts over one or more runs; latencies kept per response so percentiles of merged runs are exact. */
class Tally {
  latencies: number[] = [];
  bytes = 0;
  non2xx = 0;
  errors = 0;
  seconds = 0;

  result(): LoadResult {
    const sorted = Float64Array.from(this.latencies).sort();
    const pct = (p: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]! : 0);
    return {
      reqPerSec: sorted.length / this.seconds,
      p50: pct(50),
      p99: pct(99),
      mibPerSec: this.bytes / this.seconds / (1024 * 1024),
      requests: sorted.length,
      non2xx: this.non2xx,
      errors: this.errors,
    };
  }
}

/** One load run; several URLs (the nodes of a cluster) share the connections and run at once. */
async function run(urls: string[], opts: LoadOptions, seconds: number, tally?: Tally): Promise<void> {
  const started = performance.now();
  await Promise.all(
    urls.map(async (url, i) => {
      const instance = autocannon({
        url,
        method: opts.method,
        headers: opts.headers,
        connections: Math.floor(opts.connections / urls.length) + (i < opts.connections % urls.length ? 1 : 0),
        duration: seconds,
        timeout: 10,
        setupClient: lightParser(opts.method === 'HEAD'),
      });
      if (tally) {
        instance.on('response', (_client: Client, status: number, bytes: number, ms: number) => {
          tally.latencies.push(ms);
          tally.bytes += bytes;
          if (status < 200 || status > 299) tally.non2xx++;
        });
        instance.on('reqError', () => tally.errors++);
      }
      await instance;
    }),
  );
  if (tally) tally.seconds += (performance.now() - started) / 1000;
}

/**
 * Loads two targets in turn with the same request: a warm-up of each (thrown away), then halves in
 * A B B A order, so that a slow patch of a shared machine weighs on both sides alike. A target that
 * is a list of URLs (a cluster's nodes) is loaded on all of them at once, the connections split between them.
 */
export async function compare(targetA: string | string[], targetB: string | string[], opts: LoadOptions): Promise<[LoadResult, LoadResult]> {
  const urlA = typeof targetA === 'string' ? [targetA] : targetA;
  const urlB = typeof targetB === 'string' ? [targetB] : targetB;
  const a = new Tally();
  const b = new Tally();
  if (opts.warmupSeconds > 0) {
    await run(urlA, opts, opts.warmupSeconds);
    await run(urlB, opts, opts.warmupSeconds);
  }
  const half = opts.seconds / 2;
  await run(urlA, opts, half, a);
  await run(urlB, opts, half, b);
  await run(urlB, opts, half, b);
  await run(urlA, opts, half, a);
  return [a.result(), b.result()];
}

/** Load that is thrown away: a target (one URL or a cluster's URLs) for `seconds`. */
export async function warmUp(target: string | string[], opts: Omit<LoadOptions, 'seconds' | 'warmupSeconds'>, seconds: number): Promise<void> {
  await run(typeof target === 'string' ? [target] : target, { ...opts, seconds, warmupSeconds: 0 }, seconds);
}
