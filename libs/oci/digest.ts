import { createHash } from 'node:crypto';
import { RegistryError } from './errors.js';

/** Algorithms Wharf verifies; the spec requires sha256 and allows sha512. */
const HEX_LENGTH: Record<string, number> = { sha256: 64, sha512: 128 };
const DIGEST_GRAMMAR = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

export interface ParsedDigest {
  algorithm: 'sha256' | 'sha512';
  hex: string;
  digest: string;
}

/** Parses and checks a digest string; throws DIGEST_INVALID for anything Wharf cannot verify. */
export function parseDigest(value: string | undefined | null): ParsedDigest {
  if (!value || !DIGEST_GRAMMAR.test(value)) {
    throw new RegistryError('DIGEST_INVALID', 'invalid digest', { detail: { digest: value ?? null } });
  }
  const colon = value.indexOf(':');
  const algorithm = value.slice(0, colon);
  const hex = value.slice(colon + 1);
  const length = HEX_LENGTH[algorithm];
  if (length === undefined) {
    throw new RegistryError('DIGEST_INVALID', `unsupported digest algorithm ${algorithm}`, { detail: { digest: value } });
  }
  if (hex.length !== length || !/^[a-f0-9]+$/.test(hex)) {
    throw new RegistryError('DIGEST_INVALID', `invalid ${algorithm} digest`, { detail: { digest: value } });
  }
  return { algorithm: algorithm as 'sha256' | 'sha512', hex, digest: value };
}

export function isDigest(value: string): boolean {
  return value.includes(':');
}

export function digestOf(bytes: Uint8Array, algorithm: 'sha256' | 'sha512' = 'sha256'): string {
  return `${algorithm}:${createHash(algorithm).update(bytes).digest('hex')}`;
}
