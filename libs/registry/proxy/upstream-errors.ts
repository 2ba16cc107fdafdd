import { RegistryError } from '../../oci/index.js';
import type { RemoteError } from '../../remote/index.js';
import type { RegistryDeps } from '../deps.js';
import { proxyMetrics } from './metrics.js';
import type { Upstream } from './upstreams.js';

/**
 * Counts and logs an upstream failure (its message names the upstream, never credentials), and
 * gives the error a client gets when nothing cached can stand in: 503 UNAVAILABLE.
 */
export function upstreamFailed(deps: RegistryDeps, upstream: Upstream, err: RemoteError, what: string): RegistryError {
  proxyMetrics.upstreamErrors.inc({ upstream: upstream.config.name, reason: err.failure });
  deps.warn(`upstream ${upstream.config.name} failed (${err.failure}): ${what}`, err);
  return new RegistryError('UNAVAILABLE', `upstream ${upstream.config.name} is unavailable and this content is not cached`, {
    detail: { upstream: upstream.config.name, reason: err.failure },
  });
}
