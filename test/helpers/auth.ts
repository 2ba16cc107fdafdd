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
import { formatScope, jwkThumbprint, mergeAccess, signToken, type TokenClaims } from '../../libs/auth/index.js';
import { requiredAccess } from '../../services/api/access.js';
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
  await ssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=wharf test token CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,digitalSignature');
  await ssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'leaf.key', '-out', 'leaf.csr', '-subj', '/CN=wharf test token signer');
  await ssl('x509', '-req', '-in', 'leaf.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'leaf.pem', '-days', '2');
  await ssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'tls.key', '-out', 'tls.pem', '-days', '2', '-subj', '/CN=127.0.0.1',
    '-addext', 'subjectAltName=IP:127.0.0.1');

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
 * A proxy that adds credentials to every request, so suites written for an open registry run
 * with auth on: Basic, or Bearer with a token from the registry's issuer for exactly the scope
 * the request's endpoint needs (services/api/access.ts), as a client would fetch it.
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
      const match = url.startsWith(`${v2}/`) ? matchV2Url(url, v2) : undefined;
      const needs = match ? requiredAccess(req.method ?? 'GET', match) : undefined;
      const scope = needs ? formatScope(mergeAccess([...needs.access, ...needs.alsoAsk])) : '';
      const cached = tokens.get(scope);
      if (cached) return { authorization: `Bearer ${cached}` };
      return fetchToken(`${target}${prefix}`, scope ? [scope] : [], credentials).then((token) => {
        tokens.set(scope, token);
        return { authorization: `Bearer ${token}` };
      });
    },
  });
}
