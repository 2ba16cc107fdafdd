import { isIP } from 'node:net';

/** Names of address ranges a trusted-proxy entry may use, besides an address or a CIDR block. */
export const PROXY_RANGE_NAMES = ['loopback', 'linklocal', 'uniquelocal'] as const;

/**
 * What is wrong with an http.trustedproxies list, or undefined: each entry is an IPv4/IPv6
 * address, a CIDR block (10.0.0.0/8, fd00::/8) or one of loopback, linklocal, uniquelocal.
 */
export function checkTrustedProxies(value: unknown): string | undefined {
  if (!Array.isArray(value)) return 'must be a list';
  for (const entry of value) {
    if (typeof entry !== 'string') return `${JSON.stringify(entry)} is not a string`;
    if ((PROXY_RANGE_NAMES as readonly string[]).includes(entry)) continue;
    const [address, bits, ...more] = entry.split('/');
    const family = isIP(address ?? '');
    const max = family === 4 ? 32 : 128;
    const prefixOk = bits === undefined || (/^\d{1,3}$/.test(bits) && Number(bits) <= max);
    if (family === 0 || !prefixOk || more.length > 0) {
      return `${JSON.stringify(entry)} is not an IP address, a CIDR block or one of ${PROXY_RANGE_NAMES.join(', ')}`;
    }
  }
  return undefined;
}
