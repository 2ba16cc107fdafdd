/**
 * Test fixtures for authentication, all made at test time: an htpasswd file (bcrypt), the built-in
 * issuer's signing key, an "external issuer" CA with a leaf certificate (openssl CLI), a JWKS
 * file, and a TLS certificate for 127.0.0.1. Nothing is checked in.
 */
import { execFile } from 'node:child_process';
import { createPrivateKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import bcrypt from 'bcryptjs';
import { jwkThumbprint, signToken, type TokenClaims } from '../../libs/auth/index.js';
import { matchV2Url } from '../../services/api/dispatch.js';
import { startRoundRobin } from './round-robin.js';

const run = promisify(execFile);

export interface AuthFixture {
  dir: string;
  htpasswdPath: string;
  /** The built-in issuer's RSA key. */
  signingKeyPath: string;
  signingKey: KeyObject;
  /** A CA certificate (EC P-256) for auth.token.rootcertbundle, its key, and a leaf it signed (for x5c chains). */
  caCertPath: string;
  caKey: KeyObject;
  leafKey: KeyObject;
  leafCertDer: Buffer;
  caCertDer: Buffer;
  /** JWKS holding one Ed25519 public key under kid "ed-1". */
  jwksPath: string;
  edKey: KeyObject;
  /** A self-signed certificate and key for https://127.0.0.1. */
  tlsCertPath: string;
  tlsKeyPath: string;
  tlsCert: string;
  close(): Promise<void>;
}

function pemToDer(pem: string): Buffer {
  return Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
}

export async function makeAuthFixture(users: Record<string, string>, cost = 5): Promise<AuthFixture> {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-auth-'));
  const file = (name: string) => join(dir, name);
  const lines = Object.entries(users).map(([u, p]) => `${u}:${bcrypt.hashSync(p, cost)}`);
  await writeFile(file('htpasswd'), `# test users\n${lines.join('\n')}\n`);

  const { privateKey: signingKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  await writeFile(file('signing.pem'), signingKey.export({ type: 'pkcs8', format: 'pem' }));

  const ssl = (...args: string[]) => run('openssl', args, { cwd: dir });
  await ssl(
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    'ca.key',
    '-out',
    'ca.pem',
    '-days',
    '2',
    '-subj',
    '/CN=wharf test token CA',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,digitalSignature',
  );
  await ssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'leaf.key', '-out', 'leaf.csr', '-subj', '/CN=wharf test token signer');
  await ssl('x509', '-req', '-in', 'leaf.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'leaf.pem', '-days', '2');
  await ssl(
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    'tls.key',
    '-out',
    'tls.pem',
    '-days',
    '2',
    '-subj',
    '/CN=127.0.0.1',
    '-addext',
    'subjectAltName=IP:127.0.0.1',
  );

  const { privateKey: edKey, publicKey: edPublic } = generateKeyPairSync('ed25519');
  await writeFile(file('jwks.json'), JSON.stringify({ keys: [{ ...edPublic.export({ format: 'jwk' }), kid: 'ed-1', use: 'sig' }] }));

  return {
    dir,
    htpasswdPath: file('htpasswd'),
    signingKeyPath: file('signing.pem'),
    signingKey,
    caCertPath: file('ca.pem'),
    caKey: createPrivateKey(await readFile(file('ca.key'))),
    leafKey: createPrivateKey(await readFile(file('leaf.key'))),
    leafCertDer: pemToDer(await readFile(file('leaf.pem'), 'utf8')),
    caCertDer: pemToDer(await readFile(file('ca.pem'), 'utf8')),
    jwksPath: file('jwks.json'),
    edKey,
    tlsCertPath: file('tls.pem'),
    tlsKeyPath: file('tls.key'),
    tlsCert: await readFile(file('tls.pem'), 'utf8'),
    close: () => rm(dir, { recursive: true, force: true }),
  };
}

export function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

/** Standard claims for a token valid now, for `access`. */
export function claims(access: TokenClaims['access'], extra: Partial<TokenClaims> = {}): TokenClaims {
  const now = Math.floor(Date.now() / 1000);
  return { iss: 'wharf', sub: 'tester', aud: 'wharf', iat: now, nbf: now, exp: now + 300, access, ...extra };
}

/** Signs a token with any header (a test needs headers the library would never write). */
export function mint(header: Record<string, unknown>, body: TokenClaims, signer: (data: Buffer) => Buffer): string {
  const enc = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const data = `${enc(header)}.${enc(body)}`;
  return `${data}.${signer(Buffer.from(data)).toString('base64url')}`;
}

export const signWith = {
  rs256: (key: KeyObject) => (data: Buffer) => sign('sha256', data, key),
  es256: (key: KeyObject) => (data: Buffer) => sign('sha256', data, { key, dsaEncoding: 'ieee-p1363' }),
  eddsa: (key: KeyObject) => (data: Buffer) => sign(null, data, key),
};

export { jwkThumbprint, signToken };

/** A token from the registry's built-in issuer, as a client gets it. */
export async function fetchToken(base: string, scopes: string[], credentials?: { user: string; password: string }): Promise<string> {
  const url = new URL(`${base}/auth/token`);
  url.searchParams.set('service', 'wharf');
  for (const s of scopes) url.searchParams.append('scope', s);
  const res = await fetch(url, { headers: credentials ? { authorization: basic(credentials.user, credentials.password) } : {} });
  if (res.status !== 200) throw new Error(`token: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { token: string }).token;
}

/**
 * The token scopes a client asks for to make a request under /v2/ (`path` decoded, after /v2/),
 * written down here from docs/auth.md rather than taken from the registry's own mapping, so a
 * wrong mapping there fails these suites instead of being mirrored by them.
 */
export function scopesFor(method: string, path: string, query: URLSearchParams): string[] {
  const read = method === 'GET' || method === 'HEAD';
  const pull = (name: string) => `repository:${name}:pull`;
  if (path === '_catalog' || /(^|\/)_wharf\/repositories$/.test(path)) return ['registry:catalog:*'];
  if (/^_wharf\/admin(\/|$)/.test(path)) return ['registry:admin:*'];
  const listing = /^(.+)\/_wharf\/(manifests|tags)(\/.*)?$/.exec(path);
  if (listing) return [pull(listing[1]!)];
  const discover = /^(.+)\/_oci\/ext\/discover$/.exec(path);
  if (discover) return [pull(discover[1]!)];
  const uploads = /^(.+)\/blobs\/uploads(\/[^/]*)?$/.exec(path);
  if (uploads) {
    const from = query.get('from');
    const mount = uploads[2] === undefined || uploads[2] === '/' ? query.has('mount') && from : undefined;
    return [`repository:${uploads[1]}:pull,push`, ...(mount ? [pull(from!)] : [])];
  }
  const content = /^(.+)\/(manifests|blobs)\/[^/]+$/.exec(path);
  if (content) return [read ? pull(content[1]!) : method === 'DELETE' ? `repository:${content[1]}:delete` : `repository:${content[1]}:pull,push`];
  const listed = /^(.+)\/(tags\/list|referrers\/[^/]+)$/.exec(path);
  if (listed) return [pull(listed[1]!)];
  return [];
}

/**
 * A proxy that adds credentials to every request, so suites written for an open registry run
 * with auth on: Basic, or Bearer with a token from the registry's issuer for exactly the scopes
 * the request needs (scopesFor), as a client would fetch it.
 */
export async function startCredentialProxy(
  target: string,
  prefix: string,
  scheme: 'basic' | 'bearer',
  credentials: { user: string; password: string },
): Promise<{ url: string; close(): Promise<void> }> {
  const v2 = `${prefix}/v2`;
  const tokens = new Map<string, string>();
  return startRoundRobin([target], {
    addHeaders: (req) => {
      if (scheme === 'basic') return { authorization: basic(credentials.user, credentials.password) };
      const url = req.url ?? '';
      const parts = url.startsWith(`${v2}/`) ? matchV2Url(url, v2) : undefined;
      const scopes = parts ? scopesFor(req.method ?? 'GET', parts.path, parts.query) : [];
      const key = scopes.join(' ');
      const cached = tokens.get(key);
      if (cached) return { authorization: `Bearer ${cached}` };
      return fetchToken(`${target}${prefix}`, scopes, credentials).then((token) => {
        tokens.set(key, token);
        return { authorization: `Bearer ${token}` };
      });
    },
  });
}
