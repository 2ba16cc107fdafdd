/** `wharf keys DIR [USER]`: the one-time token auth set-up the compose file documents. */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createPrivateKey } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, describe, it } from 'node:test';
import { Htpasswd } from '../libs/auth/htpasswd.js';

const run = promisify(execFile);
const wharf = (...args: string[]) => run(process.execPath, ['bin/wharf.mjs', ...args]);

describe('wharf keys', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-keys-'));
  after(() => rm(dir, { recursive: true, force: true }));

  it('writes a signing key and an htpasswd user whose printed password logs in', async () => {
    const { stdout } = await wharf('keys', join(dir, 'auth'), 'ops');
    const password = /^password: (\S+)$/m.exec(stdout)?.[1];
    assert.ok(password && password.length >= 20);
    const key = createPrivateKey(await readFile(join(dir, 'auth', 'signing-key.pem')));
    assert.equal(key.asymmetricKeyType, 'ec');
    assert.equal((await stat(join(dir, 'auth', 'signing-key.pem'))).mode & 0o077, 0, 'the key is private to its owner');
    const htpasswd = new Htpasswd(join(dir, 'auth', 'htpasswd'));
    assert.equal(await htpasswd.verify('ops', password), true);
    assert.equal(await htpasswd.verify('ops', 'wrong'), false);
  });

  it('never overwrites: a second run is a wharf: error, exit 2, and the files are unchanged', async () => {
    const before = await readFile(join(dir, 'auth', 'htpasswd'), 'utf8');
    const err = await wharf('keys', join(dir, 'auth')).then(
      () => assert.fail('ran'),
      (e: Error & { code: number; stderr: string }) => e,
    );
    assert.equal(err.code, 2);
    assert.match(err.stderr, /^wharf: keys: .*signing-key\.pem exists; remove it first/);
    assert.equal(await readFile(join(dir, 'auth', 'htpasswd'), 'utf8'), before);
  });

  it('refuses a user name htpasswd cannot hold, and a missing DIR', async () => {
    for (const args of [['keys', join(dir, 'other'), 'a:b'], ['keys']]) {
      const err = await wharf(...args).then(
        () => assert.fail('ran'),
        (e: Error & { code: number; stderr: string }) => e,
      );
      assert.equal(err.code, 2, args.join(' '));
      assert.match(err.stderr, /^wharf: /);
    }
  });
});
