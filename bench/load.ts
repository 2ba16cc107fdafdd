import autocannon, { type Client, type Result } from 'autocannon';

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

// http-parser-js's HTTPParser.kOnHeadersComplete. autocannon 8 does not tell its parser that a HEAD
// response has no body, so with a non-zero Content-Length it waits for bytes that never come and
// every HEAD times out. Returning true from the headers callback tells the parser to skip the body.
const K_ON_HEADERS_COMPLETE = 2;

function skipBodies(client: Client): void {
  // setupClient runs inside the Client constructor, before it installs its own callback.
  process.nextTick(() => {
    const onHeadersComplete = client.parser[K_ON_HEADERS_COMPLETE] as (info: unknown) => void;
    client.parser[K_ON_HEADERS_COMPLETE] = (info: unknown) => {
      onHeadersComplete(info);
      return true;
    };
  });
}

function summarise(r: Result): LoadResult {
  return {
    reqPerSec: r.requests.average,
    p50: r.latency.p50,
    p99: r.latency.p99,
    mibPerSec: r.throughput.average / (1024 * 1024),
    requests: r.requests.total,
    non2xx: r.non2xx,
    errors: r.errors + r.timeouts,
  };
}

/** `warmupSeconds` of load that is thrown away, then `seconds` measured, with `connections` keep-alive connections. */
export async function measure(
  url: string,
  opts: { method: 'GET' | 'HEAD'; headers?: Record<string, string>; connections: number; seconds: number; warmupSeconds: number },
): Promise<LoadResult> {
  const run = (duration: number) =>
    autocannon({
      url,
      method: opts.method,
      headers: opts.headers,
      connections: opts.connections,
      duration,
      timeout: 10,
      setupClient: opts.method === 'HEAD' ? skipBodies : undefined,
    });
  if (opts.warmupSeconds > 0) await run(opts.warmupSeconds);
  return summarise(await run(opts.seconds));
}
