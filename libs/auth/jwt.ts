import { X509Certificate, constants, createPublicKey, sign, verify, type JsonWebKey, type KeyObject } from 'node:crypto';
import type { Access } from './access.js';
import { jwkThumbprint, type TrustStore } from './keys.js';

/** The claims of a registry token (Docker token specification) that Wharf reads. */
export interface TokenClaims {
  iss?: string;
  sub?: string;
  aud?: string | string[];
  exp?: number;
  nbf?: number;
  iat?: number;
  jti?: string;
  access?: Access[];
}

/** Why a token was refused; the message is for logs and never holds the token. */
export class TokenError extends Error {}

interface Algorithm {
  hash: string | null;
  /** Which keys may verify it. */
  fits(key: KeyObject): boolean;
  options?: { padding?: number; saltLength?: number; dsaEncoding?: 'ieee-p1363' };
}

const isRsa = (k: KeyObject) => k.asymmetricKeyType === 'rsa' || k.asymmetricKeyType === 'rsa-pss';
const onCurve = (curve: string) => (k: KeyObject) => k.asymmetricKeyType === 'ec' && k.asymmetricKeyDetails?.namedCurve === curve;
const pss = (bytes: number) => ({ padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: bytes });

/**
 * Public-key algorithms only. `none` and the HMAC family (HS256...) are absent on purpose: a
 * verifier that accepted HS256 with a configured public key as the secret could be fooled by
 * anyone who has the public key.
 */
const ALGORITHMS: Record<string, Algorithm> = {
  RS256: { hash: 'sha256', fits: isRsa },
  RS384: { hash: 'sha384', fits: isRsa },
  RS512: { hash: 'sha512', fits: isRsa },
  PS256: { hash: 'sha256', fits: isRsa, options: pss(32) },
  PS384: { hash: 'sha384', fits: isRsa, options: pss(48) },
  PS512: { hash: 'sha512', fits: isRsa, options: pss(64) },
  ES256: { hash: 'sha256', fits: onCurve('prime256v1'), options: { dsaEncoding: 'ieee-p1363' } },
  ES384: { hash: 'sha384', fits: onCurve('secp384r1'), options: { dsaEncoding: 'ieee-p1363' } },
  ES512: { hash: 'sha512', fits: onCurve('secp521r1'), options: { dsaEncoding: 'ieee-p1363' } },
  EdDSA: { hash: null, fits: (k) => k.asymmetricKeyType === 'ed25519' || k.asymmetricKeyType === 'ed448' },
};

/** Seconds of clock skew allowed on exp and nbf, as CNCF Distribution allows. */
export const LEEWAY_SECONDS = 60;

export interface VerifyOptions {
  trust: TrustStore;
  issuer: string;
  /** The registry's service name: `aud` must name it. */
  audience: string;
  /** Seconds since the epoch; default now. */
  now?: number;
}

interface Header {
  alg?: string;
  typ?: string;
  kid?: string;
  x5c?: string[];
  jwk?: JsonWebKey;
}

function decodePart<T>(part: string, what: string): T {
  try {
    const value = JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as unknown;
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error();
    return value as T;
  } catch {
    throw new TokenError(`malformed token ${what}`);
  }
}

/** The keys that may have signed a token, from its header: an x5c chain to a trusted root, a trusted jwk, a known kid, or else every trusted key. */
function candidateKeys(header: Header, trust: TrustStore, now: number): KeyObject[] {
  if (header.x5c !== undefined) return [verifyChain(header.x5c, trust.roots, now)];
  if (header.jwk !== undefined) {
    let key: KeyObject;
    try {
      key = createPublicKey({ key: header.jwk, format: 'jwk' });
    } catch {
      throw new TokenError('malformed jwk in token header');
    }
    const der = key.export({ type: 'spki', format: 'der' });
    const match = trust.keys.find((t) => t.key.export({ type: 'spki', format: 'der' }).equals(der));
    if (!match) throw new TokenError('token signed by an untrusted jwk');
    return [match.key];
  }
  if (header.kid !== undefined) {
    const match = trust.keys.filter((t) => t.kids.has(header.kid!));
    if (match.length === 0) throw new TokenError('token signed by an unknown key id');
    return match.map((t) => t.key);
  }
  return trust.keys.map((t) => t.key);
}

function verifyChain(x5c: string[], roots: X509Certificate[], now: number): KeyObject {
  if (!Array.isArray(x5c) || x5c.length === 0 || x5c.length > 10) throw new TokenError('malformed x5c chain');
  let chain: X509Certificate[];
  try {
    chain = x5c.map((c) => new X509Certificate(Buffer.from(String(c), 'base64')));
  } catch {
    throw new TokenError('malformed certificate in x5c chain');
  }
  const valid = (c: X509Certificate) => Date.parse(c.validFrom) / 1000 <= now && now <= Date.parse(c.validTo) / 1000;
  for (let i = 0; i < chain.length; i++) {
    const cert = chain[i]!;
    if (!valid(cert)) throw new TokenError('certificate in x5c chain is expired or not yet valid');
    if (roots.some((r) => r.fingerprint256 === cert.fingerprint256)) return chain[0]!.publicKey;
    const issuer = chain[i + 1] ?? roots.find((r) => cert.checkIssued(r) && cert.verify(r.publicKey));
    if (!issuer || !cert.checkIssued(issuer) || !cert.verify(issuer.publicKey)) throw new TokenError('x5c chain does not lead to a trusted root');
    if (roots.some((r) => r.fingerprint256 === issuer.fingerprint256)) return chain[0]!.publicKey;
  }
  throw new TokenError('x5c chain does not lead to a trusted root');
}

/** Verifies a compact JWS registry token: algorithm, signature, issuer, audience, time. Throws TokenError. */
export function verifyToken(token: string, options: VerifyOptions): TokenClaims {
  const parts = token.split('.');
  if (parts.length !== 3) throw new TokenError('malformed token');
  const [rawHeader, rawClaims, rawSignature] = parts as [string, string, string];
  const header = decodePart<Header>(rawHeader, 'header');
  const algorithm = typeof header.alg === 'string' && Object.hasOwn(ALGORITHMS, header.alg) ? ALGORITHMS[header.alg]! : undefined;
  if (!algorithm) throw new TokenError(`token algorithm ${JSON.stringify(header.alg)} is not accepted`);
  const now = options.now ?? Math.floor(Date.now() / 1000);
  const signature = Buffer.from(rawSignature, 'base64url');
  if (signature.length === 0) throw new TokenError('token has no signature');
  const signed = Buffer.from(`${rawHeader}.${rawClaims}`);
  const keys = candidateKeys(header, options.trust, now).filter((k) => algorithm.fits(k));
  const ok = keys.some((key) => {
    try {
      return verify(algorithm.hash, signed, { key, ...algorithm.options }, signature);
    } catch {
      return false;
    }
  });
  if (!ok) throw new TokenError('token signature does not verify with a trusted key');

  const claims = decodePart<TokenClaims>(rawClaims, 'claims');
  if (claims.iss !== options.issuer) throw new TokenError('token from an untrusted issuer');
  const audiences = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
  if (!audiences.includes(options.audience)) throw new TokenError('token intended for another audience');
  if (typeof claims.exp !== 'number') throw new TokenError('token has no expiry');
  if (now > claims.exp + LEEWAY_SECONDS) throw new TokenError('token expired');
  if (claims.nbf !== undefined && (typeof claims.nbf !== 'number' || now < claims.nbf - LEEWAY_SECONDS)) throw new TokenError('token not valid yet');
  if (claims.access !== undefined && !Array.isArray(claims.access)) throw new TokenError('malformed access claim');
  claims.access = (claims.access ?? []).filter(
    (a): a is Access => typeof a === 'object' && a !== null && typeof a.type === 'string' && typeof a.name === 'string' && Array.isArray(a.actions),
  );
  return claims;
}

/** The JWS algorithm a private key signs with. */
export function algorithmFor(key: KeyObject): string {
  if (isRsa(key)) return 'RS256';
  const curve = key.asymmetricKeyDetails?.namedCurve;
  if (key.asymmetricKeyType === 'ec') {
    if (curve === 'prime256v1') return 'ES256';
    if (curve === 'secp384r1') return 'ES384';
    if (curve === 'secp521r1') return 'ES512';
  }
  if (key.asymmetricKeyType === 'ed25519' || key.asymmetricKeyType === 'ed448') return 'EdDSA';
  throw new Error(`cannot sign tokens with a ${key.asymmetricKeyType} ${curve ?? ''} key`);
}

/** Signs claims as a compact JWS; `kid` is the RFC 7638 thumbprint of the public key. */
export function signToken(claims: TokenClaims, privateKey: KeyObject): string {
  const alg = algorithmFor(privateKey);
  const algorithm = ALGORITHMS[alg]!;
  const header = { typ: 'JWT', alg, kid: jwkThumbprint(createPublicKey(privateKey)) };
  const encode = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const signed = `${encode(header)}.${encode(claims)}`;
  const signature = sign(algorithm.hash, Buffer.from(signed), { key: privateKey, ...algorithm.options });
  return `${signed}.${signature.toString('base64url')}`;
}

/**
 * verifyToken with a memory of tokens already verified: a client reuses one token for every
 * request of a pull or push, and a signature check (~85 µs RS256, ~160 µs ES256 here) would
 * otherwise cost as much as serving a manifest. The trusted keys do not change while the process
 * runs, so a token that verified once verifies again until its time runs out; exp and nbf are
 * checked on every use. Refused tokens are not remembered.
 */
export class TokenVerifier {
  private readonly verified = new Map<string, TokenClaims>();

  constructor(
    private readonly options: Omit<VerifyOptions, 'now'>,
    private readonly maxEntries = 10_000,
  ) {}

  verify(token: string, now = Math.floor(Date.now() / 1000)): TokenClaims {
    const known = this.verified.get(token);
    if (known) {
      if (now <= known.exp! + LEEWAY_SECONDS && (known.nbf === undefined || now >= known.nbf - LEEWAY_SECONDS)) return known;
      this.verified.delete(token);
    }
    const claims = verifyToken(token, { ...this.options, now });
    if (this.verified.size >= this.maxEntries) this.verified.delete(this.verified.keys().next().value!);
    this.verified.set(token, claims);
    return claims;
  }
}
