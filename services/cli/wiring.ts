import { createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { buildTrustStore, Htpasswd, loadPrivateKey, parseCertificateBundle, parseJwks, Policy, type GroupDefinition, type PolicyRule } from '../../libs/auth/index.js';
import { ConfigError, parseEndpoints, parseUntaggedPolicy, parseUpstreams, redactUrl, type Config } from '../../libs/config/index.js';
import type { EventSource } from '../../libs/events/index.js';
import type { GcPolicy, HealthChecker, ManifestCacheLimits, Registry, RegistryOptions } from '../../libs/registry/index.js';
import type { Logger } from '../../libs/log/index.js';
import type { ApiOptions } from '../api/app.js';
import type { AuthOptions, TokenIssuerOptions } from '../api/auth.js';

/*
 * Config to runtime: where the keys of an API node and its registry take effect, and the gc
 * policy the workers share. Keys read elsewhere, each where its one use is: the drivers'
 * (database.*, storage.*, nats.*, data.dir) in parts.ts; the worker roles' (worker.roles,
 * gc.workers, gc.pollinterval, uploads.maxidle, notifications.*) in services/worker;
 * http.addr, http.shutdowntimeout, worker.httpaddr and events.outboxretention in start.ts, which
 * listens, closes and prunes; health.timeout in observe.ts; log.level in main.ts.
 */

/** The registry's garbage collection policy: the API enqueues reviews with it, the gc worker decides them. */
export function gcPolicyFromConfig(config: Config): GcPolicy {
  const untagged = parseUntaggedPolicy(config['gc.untagged']);
  // loadConfig refused any other value.
  if (untagged === undefined) throw new ConfigError(`gc.untagged: ${JSON.stringify(config['gc.untagged'])} is not keep or delete-after <duration>`);
  return { graceSeconds: config['gc.grace'], uploadGraceSeconds: config['gc.uploadgrace'], untaggedDeleteAfterSeconds: untagged };
}

/** The options of the Registry an API node serves. */
export function registryOptionsFromConfig(config: Config): RegistryOptions {
  return {
    pullEvents: config['events.pull'],
    manifestMaxBytes: config['limits.manifestbytes'],
    foreignUrlAllow: config['validation.manifests.urls.allow'].map((p) => new RegExp(p)),
    foreignUrlDeny: config['validation.manifests.urls.deny'].map((p) => new RegExp(p)),
    blobRedirectSeconds: config['storage.driver'] === 's3' && config['storage.s3.redirect'] ? config['storage.s3.redirectexpiry'] : 0,
    gc: gcPolicyFromConfig(config),
    webhookEndpoints: parseEndpoints(config['notifications.endpoints']).map((e) => ({ name: e.name, url: redactUrl(e.url), disabled: e.disabled })),
    blobMaxBytes: config['limits.blobbytes'],
    proxyUpstreams: parseUpstreams(config['proxy.upstreams']),
    proxyFillLeaseSeconds: config['proxy.filllease'],
    // Well inside the upload pool's idle-in-transaction timeout (parts.ts: databaseTimeouts).
    automaticMount: config['uploads.automount'],
    uploadKeepAliveMs: config['database.idletransactiontimeout'] > 0 ? (config['database.idletransactiontimeout'] * 1000) / 3 : undefined,
  };
}

/**
 * The manifest cache's bounds. It is kept coherent by events, so it runs only where every change
 * reaches this process as one: through NATS, or in embedded mode, where the database is this
 * process's own. An external database with the in-process bus may have writers (another node, a
 * `wharf worker` collecting garbage) whose events this process never sees: no cache there.
 */
export function manifestCacheLimits(config: Config): ManifestCacheLimits {
  const coherent = config['nats.url'] !== '' || config['database.url'] === '';
  if (!coherent) return { maxEntries: 0, maxBytes: 0 };
  return { maxEntries: config['cache.manifests.entries'], maxBytes: config['cache.manifests.bytes'] };
}

/** Where events say they come from: the node's address (the bound port is filled in once it listens) and instance id. */
export function eventSourceFromConfig(config: Config, fallbackInstanceId: string): EventSource {
  return { addr: config['http.addr'], instanceID: config['events.instanceid'] || fallbackInstanceId };
}

/** The HTTP API's options: prefix, limits, timeouts, TLS files and access control. */
export function apiOptionsFromConfig(config: Config, runtime: { registry: Registry; logger: Logger; source: EventSource; health: HealthChecker }): ApiOptions {
  const tls = config['http.tls.certificate']
    ? { cert: read(config['http.tls.certificate'], 'http.tls.certificate'), key: read(config['http.tls.key'], 'http.tls.key') }
    : undefined;
  return {
    ...runtime,
    prefix: config['http.prefix'],
    pageSize: config['limits.pagesize'],
    manifestMaxBytes: config['limits.manifestbytes'],
    bodyTimeoutMs: config['http.bodytimeout'] * 1000,
    auth: authFromConfig(config),
    ...(tls ? { tls } : {}),
    maxHeaderBytes: config['limits.headerbytes'],
    ui: config['ui.enabled'],
    trustedProxies: config['http.trustedproxies'],
  };
}

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
    // read() already named the key: no second prefix.
    if (err instanceof ConfigError) throw err;
    const message = (err as Error).message;
    // OpenSSL's "error:1E08010C:DECODER routines::unsupported" says nothing to an operator.
    if (/DECODER routines|unsupported|no start line|bad base64/i.test(message))
      throw new ConfigError(`${key}: the file is not a PEM key or certificate this registry can read (${message})`);
    throw new ConfigError(`${key}: ${message}`);
  }
}

function loadHtpasswd(path: string): Htpasswd {
  read(path, 'auth.htpasswd.path'); // a missing file is named as such, before it is parsed
  return parsed('auth.htpasswd.path', () => new Htpasswd(path));
}

/** Reads the files auth.* names (htpasswd, certificates, JWKS, signing key) into what the API checks requests with. */
export function authFromConfig(config: Config): AuthOptions {
  const mode = config['auth.mode'];
  const signingKeyPath = config['auth.token.signingkey'];
  const htpasswdPath = config['auth.htpasswd.path'];
  const htpasswd = htpasswdPath && (mode === 'htpasswd' || signingKeyPath) ? loadHtpasswd(htpasswdPath) : undefined;
  const signingKey = signingKeyPath ? parsed('auth.token.signingkey', () => loadPrivateKey(read(signingKeyPath, 'auth.token.signingkey'))) : undefined;
  // loadConfig made sure the issuer has its htpasswd file.
  const issuer: TokenIssuerOptions | undefined =
    signingKey && htpasswd
      ? {
          signingKey,
          htpasswd,
          service: config['auth.token.service'],
          issuer: config['auth.token.issuer'],
          expirySeconds: config['auth.token.expiry'],
          refreshExpirySeconds: config['auth.token.refreshexpiry'],
        }
      : undefined;
  const common = {
    basicRealm: config['auth.htpasswd.realm'],
    policy: new Policy(config['auth.policy'] as PolicyRule[], config['auth.groups'] as GroupDefinition[]),
    rateLimit: { rate: config['limits.ratelimit.rate'], burst: config['limits.ratelimit.burst'] },
    ...(issuer ? { issuer } : {}),
  };
  if (mode === 'none') return { mode, ...common };
  if (mode === 'htpasswd') {
    if (!htpasswd) throw new ConfigError('auth.mode htpasswd needs auth.htpasswd.path');
    return { mode, htpasswd, ...common };
  }
  if (mode !== 'token') throw new ConfigError(`auth.mode must be none, htpasswd or token, got ${JSON.stringify(mode)}`);
  const bundle = config['auth.token.rootcertbundle'];
  const jwks = config['auth.token.jwks'];
  const trust = buildTrustStore({
    certificates: bundle ? parsed('auth.token.rootcertbundle', () => parseCertificateBundle(read(bundle, 'auth.token.rootcertbundle'))) : [],
    jwks: jwks ? parsed('auth.token.jwks', () => parseJwks(read(jwks, 'auth.token.jwks'))) : [],
    extraKeys: signingKey ? [createPublicKey(signingKey)] : [],
  });
  if (trust.keys.length === 0) throw new ConfigError('auth.mode token: the certificate bundle and JWKS hold no key');
  return { mode, token: { realm: config['auth.token.realm'], service: config['auth.token.service'], issuer: config['auth.token.issuer'], trust }, ...common };
}

/** Whether an address only accepts connections from this machine. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}
