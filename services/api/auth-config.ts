import { createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { buildTrustStore, Htpasswd, loadPrivateKey, parseCertificateBundle, parseJwks, Policy, type GroupDefinition, type PolicyRule } from '../../libs/auth/index.js';
import { ConfigError, type Config } from '../../libs/config/index.js';
import type { AuthOptions } from './auth.js';

function read(path: string, key: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`${key}: cannot read ${path}: ${(err as Error).message}`);
  }
}

function parsed<T>(key: string, parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    throw new ConfigError(`${key}: ${(err as Error).message}`);
  }
}

/** Reads the files auth.* names (htpasswd, certificates, JWKS, signing key) into what the API checks requests with. */
export function authFromConfig(config: Config): AuthOptions {
  const mode = config['auth.mode'] as AuthOptions['mode'];
  const options: AuthOptions = {
    mode,
    basicRealm: config['auth.htpasswd.realm'],
    policy: new Policy(config['auth.policy'] as PolicyRule[], config['auth.groups'] as GroupDefinition[]),
    rateLimit: { rate: config['limits.ratelimit.rate'], burst: config['limits.ratelimit.burst'] },
  };
  const htpasswdPath = config['auth.htpasswd.path'];
  if (htpasswdPath && (mode === 'htpasswd' || config['auth.token.signingkey'])) {
    read(htpasswdPath, 'auth.htpasswd.path');
    options.htpasswd = parsed('auth.htpasswd.path', () => new Htpasswd(htpasswdPath));
  }
  const signingKeyPath = config['auth.token.signingkey'];
  const signingKey = signingKeyPath ? parsed('auth.token.signingkey', () => loadPrivateKey(read(signingKeyPath, 'auth.token.signingkey'))) : undefined;
  if (mode === 'token' || signingKey) {
    const bundle = config['auth.token.rootcertbundle'];
    const jwks = config['auth.token.jwks'];
    options.token = {
      realm: config['auth.token.realm'],
      service: config['auth.token.service'],
      issuer: config['auth.token.issuer'],
      expirySeconds: config['auth.token.expiry'],
      refreshExpirySeconds: config['auth.token.refreshexpiry'],
      trust: buildTrustStore({
        certificates: bundle ? parsed('auth.token.rootcertbundle', () => parseCertificateBundle(read(bundle, 'auth.token.rootcertbundle'))) : [],
        jwks: jwks ? parsed('auth.token.jwks', () => parseJwks(read(jwks, 'auth.token.jwks'))) : [],
        extraKeys: signingKey ? [createPublicKey(signingKey)] : [],
      }),
      ...(signingKey ? { signingKey } : {}),
    };
    if (options.token.trust.keys.length === 0) throw new ConfigError('auth.mode token: the certificate bundle and JWKS hold no key');
  }
  return options;
}

/** Whether an address only accepts connections from this machine. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}
