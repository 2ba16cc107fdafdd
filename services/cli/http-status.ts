import { request } from 'node:http';

/**
 * The status of a GET of `url`, with node:http rather than fetch: fetch refuses the ports the
 * Fetch standard blocks (5060, 5061, 6000, ...), which are fine ports for a registry.
 */
export function httpStatus(url: string, timeoutMs = 5_000): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'GET', timeout: timeoutMs }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from ${url} within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}
