import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ConfigError, KEYS, loadConfig } from '../libs/config/index.js';
import { readFile } from 'node:fs/promises';
import { startTestWharf, type TestWharf } from './helpers/server.js';
import { pushImage, randomBlob } from './helpers/oci.js';

describe('http.prefix', () => {
  let wharf: TestWharf;
  before(async () => {
    wharf = await startTestWharf({ 'http.prefix': '/registry' });
  });
  after(async () => wharf?.close());

  it('serves the API under the prefix and nowhere else', async () => {
    assert.equal((await fetch(`${wharf.url}/registry/v2/`)).status, 200);
    assert.equal((await fetch(`${wharf.url}/v2/`)).status, 404);
  });

  it('puts the prefix into Location and Link headers', async () => {
    const post = await fetch(`${wharf.base}/v2/pre/app/blobs/uploads/`, { method: 'POST' });
    assert.match(post.headers.get('location')!, /^\/registry\/v2\/pre\/app\/blobs\/uploads\/[0-9a-f-]{36}$/);
    const blob = randomBlob(100);
    const put = await fetch(`${wharf.url}${post.headers.get('location')}?digest=${blob.digest}`, { method: 'PUT', body: blob.bytes });
    assert.equal(put.status, 201);
    assert.equal(put.headers.get('location'), `/registry/v2/pre/app/blobs/${blob.digest}`);
    const image = await pushImage(wharf.base, 'pre/app', 'a');
    await fetch(`${wharf.base}/v2/pre/app/manifests/b`, { method: 'PUT', headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }, body: image.body });
    const tags = await fetch(`${wharf.base}/v2/pre/app/tags/list?n=1`);
    assert.match(tags.headers.get('link')!, /^<\/registry\/v2\/pre\/app\/tags\/list\?n=1&last=a>; rel="next"$/);
    const manifest = await fetch(`${wharf.base}/v2/pre/app/manifests/a`);
    assert.equal(manifest.status, 200);
  });
});

describe('configuration', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'wharf-config-'));
  });
  after(async () => rm(dir, { recursive: true, force: true }));

  it('reads YAML, then WHARF_* variables over it', async () => {
    const file = join(dir, 'ok.yaml');
    await writeFile(file, 'http:\n  addr: 127.0.0.1:6000\n  prefix: /r\nlimits:\n  pagesize: 50\n');
    const config = loadConfig({ file, env: { WHARF_HTTP_ADDR: '127.0.0.1:7000' } });
    assert.equal(config['http.addr'], '127.0.0.1:7000');
    assert.equal(config['http.prefix'], '/r');
    assert.equal(config['limits.pagesize'], 50);
    assert.equal(config['data.dir'], './data');
  });

  it('WHARF_HTTP_ADDR and WHARF_DATA_DIR override the defaults', () => {
    const config = loadConfig({ env: { WHARF_HTTP_ADDR: '0.0.0.0:5001', WHARF_DATA_DIR: '/srv/wharf' } });
    assert.equal(config['http.addr'], '0.0.0.0:5001');
    assert.equal(config['data.dir'], '/srv/wharf');
  });

  it('stops on an unknown or misspelt key, naming it', async () => {
    const file = join(dir, 'typo.yaml');
    await writeFile(file, 'http:\n  adr: 127.0.0.1:6000\n');
    assert.throws(
      () => loadConfig({ file, env: {} }),
      (err: Error) => err instanceof ConfigError && /"http\.adr"/.test(err.message),
    );
    await writeFile(file, 'storage:\n  s3:\n    bukket: x\n');
    assert.throws(() => loadConfig({ file, env: {} }), /"storage\.s3\.bukket"/);
    await writeFile(file, 'storage:\n  gcs: {}\n');
    assert.throws(() => loadConfig({ file, env: {} }), /"storage\.gcs"/);
    assert.throws(() => loadConfig({ env: { WHARF_HTTP_ADRR: 'x' } }), /WHARF_HTTP_ADRR/);
  });

  it('refuses values of the wrong type or shape', async () => {
    assert.throws(() => loadConfig({ env: { WHARF_LIMITS_PAGESIZE: 'many' } }), /limits\.pagesize must be an integer/);
    assert.throws(() => loadConfig({ env: { WHARF_HTTP_ADDR: 'nohostport' } }), /http\.addr/);
    assert.throws(() => loadConfig({ env: { WHARF_HTTP_PREFIX: 'noslash' } }), /http\.prefix/);
    assert.throws(() => loadConfig({ env: { WHARF_EVENTS_PULL: 'maybe' } }), /events\.pull/);
    const file = join(dir, 'regex.yaml');
    await writeFile(file, 'validation:\n  manifests:\n    urls:\n      allow: ["("]\n');
    assert.throws(() => loadConfig({ file, env: {} }), /not a valid regular expression/);
  });

  it('ignores WHARF_TEST_* variables, which belong to the test harness', () => {
    assert.doesNotThrow(() => loadConfig({ env: { WHARF_TEST_DATABASE_URL: 'postgres://x' } }));
  });

  it('documents every key and its variable in docs/configuration.md', async () => {
    const doc = await readFile(new URL('../docs/configuration.md', import.meta.url), 'utf8');
    for (const [key, spec] of Object.entries(KEYS)) {
      assert.ok(doc.includes(`\`${key}\``), `${key} is not documented`);
      if ('env' in spec) assert.ok(doc.includes(`\`${spec.env}\``), `${spec.env} is not documented`);
    }
  });
});
