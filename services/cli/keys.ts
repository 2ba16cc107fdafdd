/**
 * `wharf keys DIR [USER]`: the one-time set-up of token auth for a cluster. Writes the built-in
 * issuer's signing key (DIR/signing-key.pem, EC P-256) and an htpasswd file (DIR/htpasswd) with
 * USER (default admin) and a random password, printed once on stdout. Refuses to overwrite
 * either file, so running it again never locks anyone out.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { ConfigError } from '../../libs/config/index.js';

const USER_NAME = /^[A-Za-z0-9._-]{1,64}$/;
const BCRYPT_ROUNDS = 10;

export async function runKeys(args: string[]): Promise<void> {
  const [dir, user = 'admin', ...extra] = args;
  if (!dir || extra.length > 0) throw new ConfigError('usage: wharf keys DIR [USER]');
  if (!USER_NAME.test(user)) throw new ConfigError(`keys: user name ${JSON.stringify(user)} must be 1-64 of A-Z a-z 0-9 . _ -`);
  const keyFile = join(dir, 'signing-key.pem');
  const htpasswdFile = join(dir, 'htpasswd');
  for (const file of [keyFile, htpasswdFile]) if (existsSync(file)) throw new ConfigError(`keys: ${file} exists; remove it first to make new keys`);
  await mkdir(dir, { recursive: true });
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const password = randomBytes(18).toString('base64url');
  // wx: never replace a file that appeared since the check above.
  await writeFile(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600, flag: 'wx' });
  await writeFile(htpasswdFile, `${user}:${bcrypt.hashSync(password, BCRYPT_ROUNDS)}\n`, { mode: 0o600, flag: 'wx' });
  console.log(`wrote ${keyFile} and ${htpasswdFile}`);
  console.log(`user: ${user}`);
  console.log(`password: ${password}`);
}
