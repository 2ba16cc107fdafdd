import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { checkUpstreams } from './proxy.js';
import { parseUntaggedPolicy } from './duration.js';
import { KEYS, NON_KEY_ENV, NON_KEY_ENV_PREFIXES, type ConfigKey, type KeySpec } from './keys.js';

type ValueOf<K extends ConfigKey> = (typeof KEYS)[K]['type'] extends 'integer'
  ? number
  : (typeof KEYS)[K]['type'] extends 'boolean'
    ? boolean
    : (typeof KEYS)[K]['type'] extends 'strings'
      ? string[]
      : (typeof KEYS)[K]['type'] extends 'json'
        ? unknown
        : string;

export type Config = { [K in ConfigKey]: ValueOf<K> };

export class ConfigError extends Error {}

function convert(key: string, spec: KeySpec, raw: unknown, from: string): unknown {
  const fail = (want: string) => new ConfigError(`${from}: ${key} must be ${want}, got ${JSON.stringify(raw)}`);
  switch (spec.type) {
    case 'string':
      if (typeof raw === 'string') return raw;
      if (typeof raw === 'number') return String(raw);
      throw fail('a string');
    case 'integer': {
      const n = typeof raw === 'string' && /^-?\d+$/.test(raw.trim()) ? Number(raw) : raw;
      if (typeof n !== 'number' || !Number.isSafeInteger(n)) throw fail('an integer');
      if (spec.min !== undefined && n < spec.min) throw fail(`at least ${spec.min}`);
      return n;
    }
    case 'boolean':
      if (typeof raw === 'boolean') return raw;
      if (raw === 'true' || raw === '1') return true;
      if (raw === 'false' || raw === '0') return false;
      throw fail('true or false');
    case 'strings': {
      let list: string[];
      if (Array.isArray(raw) && raw.every((s) => typeof s === 'string')) list = raw as string[];
      else if (typeof raw === 'string')
        list = raw
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean);
      else throw fail('a list of strings');
      const problem = spec.check?.(list);
      if (problem) throw new ConfigError(`${from}: ${key}: ${problem}`);
      return list;
    }
    case 'json': {
      let value = raw;
      if (typeof raw === 'string' && from.startsWith('WHARF_')) {
        try {
          value = JSON.parse(raw);
        } catch {
          throw fail('JSON text');
        }
      }
      const problem = spec.check?.(value);
      if (problem) throw new ConfigError(`${from}: ${key}: ${problem}`);
      return value;
    }
  }
}

/** Flattens nested YAML into dotted keys; an unknown key (a typo, say) is an error that names it. */
function flatten(doc: unknown, from: string, prefix = '', out: Record<string, unknown> = {}): Record<string, unknown> {
  if (doc === null || doc === undefined) return out;
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new ConfigError(`${from}: ${prefix || 'the document'} must be a mapping`);
  for (const [name, value] of Object.entries(doc)) {
    const key = prefix ? `${prefix}.${name}` : name;
    if (key in KEYS) {
      out[key] = value;
    } else if (Object.keys(KEYS).some((k) => k.startsWith(`${key}.`))) {
      flatten(value, from, key, out);
    } else {
      throw new ConfigError(`${from}: unknown configuration key "${key}" (see docs/configuration.md)`);
    }
  }
  return out;
}

export interface LoadOptions {
  file?: string;
  env?: NodeJS.ProcessEnv;
  /** Values that win over file and environment, e.g. from a test. */
  overrides?: Partial<Config>;
}

/** Defaults, then the YAML file, then WHARF_* variables, then overrides; validated strictly. */
export function loadConfig(options: LoadOptions = {}): Config {
  const env = options.env ?? process.env;
  const values: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(KEYS)) values[key] = spec.default;

  const file = options.file ?? env.WHARF_CONFIG;
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new ConfigError(`cannot read config file ${file}: ${(err as Error).message}`);
    }
    let doc: unknown;
    try {
      doc = parseYaml(text);
    } catch (err) {
      throw new ConfigError(`${file}: not valid YAML: ${(err as Error).message}`);
    }
    for (const [key, raw] of Object.entries(flatten(doc, file))) values[key] = convert(key, KEYS[key as ConfigKey], raw, file);
  }

  const byEnv = new Map<string, [string, KeySpec]>();
  for (const [key, spec] of Object.entries(KEYS) as Array<[string, KeySpec]>) if (spec.env) byEnv.set(spec.env, [key, spec]);
  for (const [name, raw] of Object.entries(env)) {
    if (!name.startsWith('WHARF_') || raw === undefined) continue;
    if (NON_KEY_ENV.has(name) || NON_KEY_ENV_PREFIXES.some((p) => name.startsWith(p))) continue;
    const entry = byEnv.get(name);
    if (!entry) throw new ConfigError(`unknown environment variable ${name} (see docs/configuration.md)`);
    values[entry[0]] = convert(entry[0], entry[1], raw, name);
  }

  Object.assign(values, options.overrides ?? {});
  const config = values as Config;
  validate(config);
  return config;
}

function validate(config: Config): void {
  if (!/^[^\s:]*:\d+$/.test(config['http.addr']) && !/^\[[0-9a-fA-F:]+\]:\d+$/.test(config['http.addr'])) {
    throw new ConfigError(`http.addr must be host:port, got ${JSON.stringify(config['http.addr'])}`);
  }
  const prefix = config['http.prefix'];
  if (prefix !== '' && !/^(\/[A-Za-z0-9._~-]+)+$/.test(prefix)) {
    throw new ConfigError(`http.prefix must look like /segment[/segment...] with no trailing slash, got ${JSON.stringify(prefix)}`);
  }
  if (!['filesystem', 's3'].includes(config['storage.driver'])) {
    throw new ConfigError(`storage.driver must be filesystem or s3, got ${JSON.stringify(config['storage.driver'])}`);
  }
  if (config['storage.driver'] === 's3' && config['storage.s3.bucket'] === '') throw new ConfigError('storage.s3.bucket is required with storage.driver s3');
  if ((config['storage.s3.accesskeyid'] === '') !== (config['storage.s3.secretaccesskey'] === '')) {
    throw new ConfigError('storage.s3.accesskeyid and storage.s3.secretaccesskey go together');
  }
  checkS3(config);
  if (parseUntaggedPolicy(config['gc.untagged']) === undefined) {
    throw new ConfigError(`gc.untagged must be keep or "delete-after <duration>" (e.g. delete-after 7d; units ms, s, m, h, d), got ${JSON.stringify(config['gc.untagged'])}`);
  }
  if (!['none', 'htpasswd', 'token'].includes(config['auth.mode'])) throw new ConfigError(`auth.mode must be none, htpasswd or token, got ${JSON.stringify(config['auth.mode'])}`);
  if (config['auth.mode'] === 'htpasswd' && config['auth.htpasswd.path'] === '') throw new ConfigError('auth.mode htpasswd needs auth.htpasswd.path');
  if (config['auth.mode'] === 'token' && !config['auth.token.rootcertbundle'] && !config['auth.token.jwks'] && !config['auth.token.signingkey']) {
    throw new ConfigError('auth.mode token needs a key to trust: auth.token.rootcertbundle, auth.token.jwks or auth.token.signingkey');
  }
  if (config['auth.token.signingkey'] !== '' && config['auth.htpasswd.path'] === '')
    throw new ConfigError('the built-in token issuer (auth.token.signingkey) checks users against auth.htpasswd.path');
  if ((config['http.tls.certificate'] === '') !== (config['http.tls.key'] === '')) throw new ConfigError('http.tls.certificate and http.tls.key go together');
  // Overrides skip the per-key check that file and environment values get.
  const upstreams = checkUpstreams(config['proxy.upstreams']);
  if (upstreams) throw new ConfigError(`proxy.upstreams: ${upstreams}`);
  const levels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
  if (!levels.includes(config['log.level'])) throw new ConfigError(`log.level must be one of ${levels.join(', ')}`);
  for (const key of ['validation.manifests.urls.allow', 'validation.manifests.urls.deny'] as const) {
    for (const pattern of config[key]) {
      try {
        new RegExp(pattern);
      } catch {
        throw new ConfigError(`${key}: ${JSON.stringify(pattern)} is not a valid regular expression`);
      }
    }
  }
}

export function splitAddr(addr: string): { host: string; port: number } {
  const colon = addr.lastIndexOf(':');
  const host = addr.slice(0, colon).replace(/^\[|\]$/g, '') || '0.0.0.0';
  return { host, port: Number(addr.slice(colon + 1)) };
}

/** The WHARF_* variables that give a child process this config (keys without a variable keep their defaults). */
export function configToEnv(config: Config): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, spec] of Object.entries(KEYS) as Array<[ConfigKey, KeySpec]>) {
    if (!spec.env) continue;
    const value = config[key];
    env[spec.env] = spec.type === 'json' ? JSON.stringify(value) : Array.isArray(value) ? value.join(',') : String(value);
  }
  return env;
}

const S3_CHECKSUM_MODES = ['auto', 'when_required', 'when_supported'];

/** The S3 client keys: URLs that parse, a known checksum mode, and bounds S3 itself sets. */
function checkS3(config: Config): void {
  for (const key of ['storage.s3.endpoint', 'storage.s3.publicendpoint'] as const) {
    const value = config[key];
    if (value === '') continue;
    let url: URL | undefined;
    try {
      url = new URL(value);
    } catch {
      // reported below
    }
    if (!url || !['http:', 'https:'].includes(url.protocol) || url.search || url.hash) {
      throw new ConfigError(`${key} must be an http:// or https:// URL, got ${JSON.stringify(value)}`);
    }
  }
  if (!S3_CHECKSUM_MODES.includes(config['storage.s3.checksum'])) {
    throw new ConfigError(`storage.s3.checksum must be ${S3_CHECKSUM_MODES.join(', ')}, got ${JSON.stringify(config['storage.s3.checksum'])}`);
  }
  if (config['storage.s3.maxattempts'] > 10) throw new ConfigError(`storage.s3.maxattempts must be at most 10, got ${config['storage.s3.maxattempts']}`);
  if (config['storage.s3.partsize'] > 5 * 1024 ** 3) throw new ConfigError(`storage.s3.partsize must be at most 5 GiB (S3's limit), got ${config['storage.s3.partsize']}`);
  if (config['storage.s3.partconcurrency'] > 16) throw new ConfigError(`storage.s3.partconcurrency must be at most 16, got ${config['storage.s3.partconcurrency']}`);
}
