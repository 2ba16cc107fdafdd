/** The S3 client's config keys: each bad value stops start-up with a message naming the key. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig } from '../../libs/config/index.js';

const bad = (env: Record<string, string>, message: RegExp) =>
  assert.throws(
    () => loadConfig({ env }),
    (err: Error) => err instanceof ConfigError && message.test(err.message),
  );

describe('S3 client configuration', () => {
  it('defaults: auto checksums, 30 s per attempt, 4 attempts, 8 MiB parts, 2 in flight, no public endpoint', () => {
    const c = loadConfig({ env: {} });
    assert.equal(c['storage.s3.checksum'], 'auto');
    assert.equal(c['storage.s3.timeout'], 30);
    assert.equal(c['storage.s3.maxattempts'], 4);
    assert.equal(c['storage.s3.partsize'], 8 * 1024 * 1024);
    assert.equal(c['storage.s3.partconcurrency'], 2);
    assert.equal(c['storage.s3.publicendpoint'], '');
    assert.equal(c['gc.sweepinterval'], 3600);
  });

  it('accepts what an operator sets', () => {
    const c = loadConfig({
      env: { WHARF_S3_CHECKSUM: 'when_supported', WHARF_S3_PUBLICENDPOINT: 'https://s3.example.com', WHARF_S3_TIMEOUT: '5', WHARF_S3_PARTSIZE: String(64 * 1024 * 1024) },
    });
    assert.equal(c['storage.s3.checksum'], 'when_supported');
    assert.equal(c['storage.s3.publicendpoint'], 'https://s3.example.com');
  });

  it('refuses bad values, naming the key', () => {
    bad({ WHARF_S3_CHECKSUM: 'always' }, /storage\.s3\.checksum must be auto, when_required, when_supported/);
    bad({ WHARF_S3_PUBLICENDPOINT: 's3.example.com' }, /storage\.s3\.publicendpoint must be an http/);
    bad({ WHARF_S3_PUBLICENDPOINT: 'ftp://s3.example.com' }, /storage\.s3\.publicendpoint must be an http/);
    bad({ WHARF_S3_ENDPOINT: 'http://rgw:7480/?x=1' }, /storage\.s3\.endpoint must be an http/);
    bad({ WHARF_S3_TIMEOUT: '0' }, /storage\.s3\.timeout/);
    bad({ WHARF_S3_MAXATTEMPTS: '0' }, /storage\.s3\.maxattempts/);
    bad({ WHARF_S3_MAXATTEMPTS: '11' }, /storage\.s3\.maxattempts must be at most 10/);
    bad({ WHARF_S3_PARTSIZE: String(5 * 1024 * 1024 - 1) }, /storage\.s3\.partsize/);
    bad({ WHARF_S3_PARTSIZE: String(6 * 1024 ** 3) }, /storage\.s3\.partsize must be at most 5 GiB/);
    bad({ WHARF_S3_PARTCONCURRENCY: '17' }, /storage\.s3\.partconcurrency must be at most 16/);
    bad({ WHARF_GC_SWEEPINTERVAL: '0' }, /gc\.sweepinterval/);
  });
});
