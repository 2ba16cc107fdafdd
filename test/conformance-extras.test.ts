/**
 * Conformance details beyond the spec suites: a GET or HEAD of a tag that breaks the tag grammar
 * is 404 MANIFEST_UNKNOWN (as the OCI conformance suite and Distribution answer), its PUT 400
 * TAG_INVALID; and uploads.automount: false makes a mount without `from` an ordinary upload.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { startTestWharf, type TestWharf } from './helpers/server.js';
import { OCI_MANIFEST, blobOf, errorCode, pushBlob, putManifest } from './helpers/oci.js';

let wharf: TestWharf;
before(async () => {
  wharf = await startTestWharf();
});
after(async () => wharf?.close());

describe('references that break the tag grammar', () => {
  for (const reference of ['.INVALID_MANIFEST_NAME', '-dash-first', 'a'.repeat(129), 'sp%20ace']) {
    it(`GET and HEAD /manifests/${reference.slice(0, 30)}: 404 MANIFEST_UNKNOWN; PUT: 400 TAG_INVALID`, async () => {
      const name = 'conformance/tags';
      await pushBlob(wharf.base, name, blobOf('x'));
      const get = await fetch(`${wharf.base}/v2/${name}/manifests/${reference}`, { headers: { accept: OCI_MANIFEST } });
      assert.equal(get.status, 404);
      assert.equal(await errorCode(get), 'MANIFEST_UNKNOWN');
      assert.equal((await fetch(`${wharf.base}/v2/${name}/manifests/${reference}`, { method: 'HEAD' })).status, 404);
      const put = await putManifest(wharf.base, name, reference, '{}', OCI_MANIFEST);
      assert.equal(put.status, 400);
      assert.equal(await errorCode(put), 'TAG_INVALID');
    });
  }
});

describe('uploads.automount', () => {
  it('false: a mount without from starts an upload (202); with from it still mounts (201)', async () => {
    const own = await startTestWharf({ 'uploads.automount': false });
    try {
      const blob = blobOf('mount me');
      await pushBlob(own.base, 'mount/source', blob);
      const without = await fetch(`${own.base}/v2/mount/target/blobs/uploads/?mount=${blob.digest}`, { method: 'POST' });
      assert.equal(without.status, 202);
      assert.equal((await fetch(`${own.base}/v2/mount/target/blobs/${blob.digest}`, { method: 'HEAD' })).status, 404);
      const withFrom = await fetch(`${own.base}/v2/mount/target/blobs/uploads/?mount=${blob.digest}&from=mount/source`, { method: 'POST' });
      assert.equal(withFrom.status, 201);
    } finally {
      await own.close();
    }
  });

  it('true (the default): a mount without from finds the blob', async () => {
    const blob = blobOf('mount me too');
    await pushBlob(wharf.base, 'mount/source', blob);
    assert.equal((await fetch(`${wharf.base}/v2/mount/target/blobs/uploads/?mount=${blob.digest}`, { method: 'POST' })).status, 201);
  });
});

/** Sends `head` as it is on a fresh connection; resolves with the status line and body of the answer. */
function rawExchange(base: string, head: string): Promise<{ status: number; text: string }> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(url.port), url.hostname, () => socket.write(head));
    let data = '';
    socket.on('data', (d) => (data += d.toString()));
    socket.on('error', reject);
    socket.on('end', () => resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(data)?.[1]), text: data }));
  });
}

describe('the absolute form of the request target (RFC 9112 section 3.2.2)', () => {
  it('GET http://host/v2/ HTTP/1.1 is served like GET /v2/', async () => {
    const { host, pathname } = new URL(wharf.base);
    const prefix = pathname === '/' ? '' : pathname;
    const res = await rawExchange(wharf.base, `GET http://${host}${prefix}/v2/ HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
    assert.equal(res.status, 200, res.text);
  });

  it('a blob GET in absolute form answers with the blob, whatever the Host header says', async () => {
    await pushBlob(wharf.base, 'absolute/app', blobOf('absolute'));
    const { host, pathname } = new URL(wharf.base);
    const prefix = pathname === '/' ? '' : pathname;
    const res = await rawExchange(
      wharf.base,
      `GET http://${host}${prefix}/v2/absolute/app/blobs/${blobOf('absolute').digest} HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n`,
    );
    assert.equal(res.status, 200, res.text);
    assert.ok(res.text.endsWith('absolute'), res.text);
  });
});
