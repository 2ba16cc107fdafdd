import { X509Certificate, createHash, createPrivateKey, createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';

/** A public key tokens may be signed with, and the key ids a token header may name it by. */
export interface TrustedKey {
  key: KeyObject;
  kids: Set<string>;
}

/** What a token verifier trusts: keys looked up by `kid` (or tried in turn), and roots for an `x5c` chain. */
export interface TrustStore {
  keys: TrustedKey[];
  roots: X509Certificate[];
}

const b64url = (buf: Buffer) => buf.toString('base64url');

/** RFC 7638 JWK thumbprint: SHA-256 over the required members in lexical order. */
export function jwkThumbprint(key: KeyObject): string {
  const jwk = key.export({ format: 'jwk' }) as Record<string, string>;
  const members: Record<string, string[]> = { RSA: ['e', 'kty', 'n'], EC: ['crv', 'kty', 'x', 'y'], OKP: ['crv', 'kty', 'x'] };
  const names = members[jwk.kty!];
  if (!names) throw new Error(`unsupported key type ${jwk.kty}`);
  const canonical = `{${names.map((n) => `${JSON.stringify(n)}:${JSON.stringify(jwk[n])}`).join(',')}}`;
  return b64url(createHash('sha256').update(canonical).digest());
}

/**
 * The key id Docker's libtrust gives a key (CNCF Distribution 2.x looks `kid` up this way): the
 * first 240 bits of SHA-256 over the DER public key, base32, in colon-separated groups of four.
 */
export function libtrustKeyId(key: KeyObject): string {
  const der = key.export({ type: 'spki', format: 'der' });
  const bytes = createHash('sha256').update(der).digest().subarray(0, 30);
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += alphabet[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  return out.match(/.{1,4}/g)!.join(':');
}

function trusted(key: KeyObject, extraKid?: string): TrustedKey {
  const kids = new Set([jwkThumbprint(key), libtrustKeyId(key)]);
  if (extraKid) kids.add(extraKid);
  return { key, kids };
}

/** Certificates of a PEM bundle: each one's key is trusted, and each is a root for x5c chains. */
export function parseCertificateBundle(pem: string): X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((b) => new X509Certificate(b));
}

/** A JWKS document: `{"keys": [...]}`; each key trusted under its `kid` and its thumbprint. */
export function parseJwks(text: string): TrustedKey[] {
  const doc = JSON.parse(text) as { keys?: Array<JsonWebKey & { kid?: string }> };
  if (!Array.isArray(doc.keys)) throw new Error('a JWKS document needs a "keys" list');
  return doc.keys.map((jwk) => {
    const { d: _private, ...publicPart } = jwk;
    return trusted(createPublicKey({ key: publicPart as JsonWebKey, format: 'jwk' }), jwk.kid);
  });
}

export function buildTrustStore(options: { certificates?: X509Certificate[]; jwks?: TrustedKey[]; extraKeys?: KeyObject[] }): TrustStore {
  const roots = options.certificates ?? [];
  return {
    roots,
    keys: [...roots.map((c) => trusted(c.publicKey)), ...(options.jwks ?? []), ...(options.extraKeys ?? []).map((k) => trusted(k))],
  };
}

export function loadPrivateKey(pem: string): KeyObject {
  return createPrivateKey(pem);
}
