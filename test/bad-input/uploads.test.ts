/**
 * Blob uploads that must be refused: wrong and malformed digests, truncated bodies, inconsistent
 * Content-Length and Content-Range, sessions that are over, and session ids that are not ours.
 * Each gets a 4xx in OCI error JSON and leaves nothing half-written.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  closeBadInputWharf,
  assertAnswerIfAny,
  assertNoManifest,
  assertServerRefused,
  assertSessionAt,
  assertSessionGone,
  assertUnchanged,
  blobRow,
  expectError,
  expectRawError,
  finishUpload,
  openSession,
  repo,
  repoWithBlobs,
  repositoryExists,
  serverStatus,
  sessionId,
  snapshot,
  untilServerHas,
  untilUnlocked,
  uploadRowsFor,
  startBadInputWharf,
} from '../helpers/bad-input.js';
import { OCI_MANIFEST, pushBlob, randomBlob, sha256 } from '../helpers/oci.js';
import { rawRequest } from '../helpers/raw-http.js';
import { behindTestProxy } from '../helpers/server.js';
import { eventually } from '../helpers/wait.js';

let base: string;

before(async () => {
  base = await startBadInputWharf();
});
after(closeBadInputWharf);

describe('blob upload: digests', () => {
  it('PUT with the wrong digest: 400 DIGEST_INVALID, the session is discarded, no blob', async () => {
    const name = repo('wrong-digest');
    const blob = randomBlob(300);
    const before = await snapshot();
    const url = await openSession(name, blob.bytes.subarray(0, 100));
    const wrong = sha256('something else');
    const res = await fetch(`${url}?digest=${wrong}`, { method: 'PUT' });
    await expectError(res, 400, 'DIGEST_INVALID', 'PUT wrong digest');
    await assertSessionGone(url, 'PUT wrong digest');
    assert.equal(await blobRow(wrong), undefined);
    assert.equal(await repositoryExists(name), false);
    await assertUnchanged(before, 'PUT wrong digest');
  });

  it('PUT with the wrong digest and a last chunk: 400 DIGEST_INVALID, the session is discarded, no blob', async () => {
    const name = repo('wrong-digest-body');
    const blob = randomBlob(300);
    const before = await snapshot();
    const url = await openSession(name, blob.bytes.subarray(0, 100));
    const wrong = sha256('something else entirely');
    const res = await fetch(`${url}?digest=${wrong}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/octet-stream', 'content-range': '100-299' },
      body: blob.bytes.subarray(100),
    });
    await expectError(res, 400, 'DIGEST_INVALID', 'PUT wrong digest with body');
    await assertSessionGone(url, 'PUT wrong digest with body');
    assert.equal(await blobRow(wrong), undefined);
    assert.equal(await blobRow(blob.digest), undefined);
    await assertUnchanged(before, 'PUT wrong digest with body');
  });

  const malformed: Array<[string, string | undefined]> = [
    ['sha256:xyz', 'sha256:xyz'],
    ['md5:...', 'md5:d41d8cd98f00b204e9800998ecf8427e'],
    ['nonsense', 'nonsense'],
    ['empty ?digest=', ''],
    ['sha256 with upper-case hex', `sha256:${'A'.repeat(64)}`],
    ['sha256 one hex digit short', `sha256:${'a'.repeat(63)}`],
    ['missing digest parameter', undefined],
  ];

  for (const [label, digest] of malformed) {
    it(`PUT with a malformed digest (${label}): 400 DIGEST_INVALID, the session is untouched`, async () => {
      const name = repo('malformed-put');
      const blob = randomBlob(300);
      const url = await openSession(name, blob.bytes.subarray(0, 100));
      const before = await snapshot();
      const query = digest === undefined ? '' : `?digest=${encodeURIComponent(digest)}`;
      const res = await fetch(`${url}${query}`, {
        method: 'PUT',
        headers: { 'content-type': 'application/octet-stream', 'content-range': '100-149' },
        body: blob.bytes.subarray(100, 150),
      });
      await expectError(res, 400, 'DIGEST_INVALID', `PUT ${label}`);
      await assertUnchanged(before, `PUT ${label}`);
      await assertSessionAt(url, 100, `PUT ${label}`);
      await finishUpload(url, name, blob, 100);
    });
  }

  it('POST ?digest= naming a blob stored in another repository, with other bytes: 400 DIGEST_INVALID, nothing linked', async () => {
    const owner = repo('digest-owner');
    const stored = randomBlob(800);
    await pushBlob(base, owner, stored);
    const name = repo('digest-claimer');
    const before = await snapshot();
    const res = await fetch(`${base}/v2/${name}/blobs/uploads/?digest=${stored.digest}`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body: randomBlob(800).bytes,
    });
    await expectError(res, 400, 'DIGEST_INVALID', 'POST claiming a stored digest');
    await assertUnchanged(before, 'POST claiming a stored digest');
    assert.equal(await repositoryExists(name), false);
    const head = await fetch(`${base}/v2/${name}/blobs/${stored.digest}`, { method: 'HEAD' });
    assert.equal(head.status, 404, 'the stored blob must not be linked to the claimer');
    const original = await fetch(`${base}/v2/${owner}/blobs/${stored.digest}`);
    assert.deepEqual(Buffer.from(await original.arrayBuffer()), stored.bytes, "the owner's blob is intact");
  });

  it('PUT of a session naming a blob stored elsewhere, with other bytes: 400 DIGEST_INVALID, nothing linked', async () => {
    const owner = repo('digest-owner');
    const stored = randomBlob(800);
    await pushBlob(base, owner, stored);
    const name = repo('digest-claimer');
    const before = await snapshot();
    const url = await openSession(name, randomBlob(800).bytes);
    await expectError(await fetch(`${url}?digest=${stored.digest}`, { method: 'PUT' }), 400, 'DIGEST_INVALID', 'PUT claiming a stored digest');
    await assertUnchanged(before, 'PUT claiming a stored digest');
    assert.equal((await fetch(`${base}/v2/${name}/blobs/${stored.digest}`, { method: 'HEAD' })).status, 404);
    const original = await fetch(`${base}/v2/${owner}/blobs/${stored.digest}`);
    assert.deepEqual(Buffer.from(await original.arrayBuffer()), stored.bytes, "the owner's blob is intact");
  });

  it('monolithic POST ?digest= with the wrong digest: 400 DIGEST_INVALID, no session, no blob', async () => {
    const name = repo('mono-wrong');
    const blob = randomBlob(2000);
    const wrong = sha256('not these bytes');
    const before = await snapshot();
    const res = await fetch(`${base}/v2/${name}/blobs/uploads/?digest=${wrong}`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body: blob.bytes,
    });
    await expectError(res, 400, 'DIGEST_INVALID', 'monolithic POST wrong digest');
    assert.deepEqual(await uploadRowsFor(name), []);
    assert.equal(await blobRow(wrong), undefined);
    assert.equal(await blobRow(blob.digest), undefined);
    assert.equal(await repositoryExists(name), false);
    await assertUnchanged(before, 'monolithic POST wrong digest');
  });

  for (const [label, digest] of malformed.filter(([, d]) => d !== undefined && d !== '')) {
    it(`monolithic POST with a malformed digest (${label}): 400 DIGEST_INVALID, no session, no blob`, async () => {
      const name = repo('mono-malformed');
      const blob = randomBlob(500);
      const before = await snapshot();
      const res = await fetch(`${base}/v2/${name}/blobs/uploads/?digest=${encodeURIComponent(digest!)}`, {
        method: 'POST',
        headers: { 'content-type': 'application/octet-stream' },
        body: blob.bytes,
      });
      await expectError(res, 400, 'DIGEST_INVALID', `monolithic POST ${label}`);
      assert.deepEqual(await uploadRowsFor(name), []);
      await assertUnchanged(before, `monolithic POST ${label}`);
    });
  }

  for (const [label, digest] of malformed.filter(([, d]) => d !== undefined && d !== '')) {
    it(`blob GET with a malformed digest (${label}): 400 DIGEST_INVALID`, async () => {
      const res = await fetch(`${base}/v2/${repo('get-malformed')}/blobs/${encodeURIComponent(digest!)}`);
      await expectError(res, 400, 'DIGEST_INVALID', `blob GET ${label}`);
    });
  }
});

describe('truncated uploads (the client hangs up mid-body)', () => {
  for (const hangUp of ['end', 'destroy'] as const) {
    it(`PATCH whose Content-Length exceeds the bytes sent, then socket.${hangUp}(): offset unchanged, no blob`, async () => {
      const name = repo(`trunc-patch-${hangUp}`);
      const blob = randomBlob(100_000);
      const url = await openSession(name, blob.bytes.subarray(0, 1000));
      const id = sessionId(url);
      const before = await snapshot();
      const result = await rawRequest({
        url,
        method: 'PATCH',
        headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(blob.size - 1000) },
        body: blob.bytes.subarray(1000, 30_000),
        after: hangUp,
        beforeHangUp: () => untilServerHas(name, 30_000),
      });
      await untilUnlocked(id);
      await assertUnchanged(before, `truncated PATCH (${hangUp})`);
      assert.equal(await blobRow(blob.digest), undefined);
      await assertServerRefused('PATCH', url, `truncated PATCH (${hangUp})`);
      await assertSessionAt(url, 1000, `truncated PATCH (${hangUp})`);
      await finishUpload(url, name, blob, 1000);
      assertAnswerIfAny(result, 400, 'BLOB_UPLOAD_INVALID', `truncated PATCH (${hangUp})`);
    });

    it(`PATCH with Content-Range longer than the bytes sent, then socket.${hangUp}(): offset unchanged`, async () => {
      const name = repo(`trunc-range-${hangUp}`);
      const blob = randomBlob(50_000);
      const url = await openSession(name, blob.bytes.subarray(0, 500));
      const id = sessionId(url);
      const before = await snapshot();
      const result = await rawRequest({
        url,
        method: 'PATCH',
        headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `500-${blob.size - 1}`, 'Content-Length': String(blob.size - 500) },
        body: blob.bytes.subarray(500, 20_000),
        after: hangUp,
        beforeHangUp: () => untilServerHas(name, 20_000),
      });
      await untilUnlocked(id);
      await assertUnchanged(before, `truncated ranged PATCH (${hangUp})`);
      await assertServerRefused('PATCH', url, `truncated ranged PATCH (${hangUp})`);
      await assertSessionAt(url, 500, `truncated ranged PATCH (${hangUp})`);
      await finishUpload(url, name, blob, 500);
      assertAnswerIfAny(result, 400, 'BLOB_UPLOAD_INVALID', `truncated ranged PATCH (${hangUp})`);
    });

    it(`final PUT ?digest= with a truncated last chunk, then socket.${hangUp}(): session at its offset, no blob`, async () => {
      const name = repo(`trunc-put-${hangUp}`);
      const blob = randomBlob(60_000);
      const url = await openSession(name, blob.bytes.subarray(0, 1000));
      const id = sessionId(url);
      const before = await snapshot();
      const result = await rawRequest({
        url: `${url}?digest=${blob.digest}`,
        method: 'PUT',
        headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(blob.size - 1000) },
        body: blob.bytes.subarray(1000, 20_000),
        after: hangUp,
        beforeHangUp: () => untilServerHas(name, 20_000),
      });
      await untilUnlocked(id);
      await assertUnchanged(before, `truncated PUT (${hangUp})`);
      assert.equal(await blobRow(blob.digest), undefined);
      await assertServerRefused('PUT', `${url}?digest=${blob.digest}`, `truncated PUT (${hangUp})`);
      await assertSessionAt(url, 1000, `truncated PUT (${hangUp})`);
      await finishUpload(url, name, blob, 1000);
      assertAnswerIfAny(result, 400, 'BLOB_UPLOAD_INVALID', `truncated PUT (${hangUp})`);
    });

    it(`monolithic POST ?digest= whose Content-Length exceeds the bytes sent, then socket.${hangUp}(): no session, no blob`, async () => {
      const name = repo(`trunc-mono-${hangUp}`);
      const blob = randomBlob(100_000);
      const before = await snapshot();
      const url = `${base}/v2/${name}/blobs/uploads/?digest=${blob.digest}`;
      const result = await rawRequest({
        url,
        method: 'POST',
        headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(blob.size) },
        body: blob.bytes.subarray(0, 40_000),
        after: hangUp,
        beforeHangUp: () => untilServerHas(name, 40_000),
      });
      await eventually(async () => assert.deepEqual(await uploadRowsFor(name), [], 'the session of the failed POST is still there'), 15_000);
      await assertServerRefused('POST', url, `truncated monolithic POST (${hangUp})`);
      await assertUnchanged(before, `truncated monolithic POST (${hangUp})`);
      assert.equal(await blobRow(blob.digest), undefined);
      assert.equal(await repositoryExists(name), false);
      // The same blob pushed properly afterwards works.
      await pushBlob(base, name, blob);
      assertAnswerIfAny(result, 400, 'BLOB_UPLOAD_INVALID', `truncated monolithic POST (${hangUp})`);
    });

    it(`manifest PUT whose Content-Length exceeds the bytes sent, then socket.${hangUp}(): a 4xx, nothing stored`, async () => {
      const { name, manifest } = await repoWithBlobs(`trunc-manifest-${hangUp}`);
      const before = await snapshot();
      const url = `${base}/v2/${name}/manifests/v1`;
      const bytes = Buffer.from(manifest);
      const result = await rawRequest({
        url,
        method: 'PUT',
        headers: { 'Content-Type': OCI_MANIFEST, 'Content-Length': String(bytes.length + 100) },
        body: bytes,
        after: hangUp,
        beforeHangUp: () => new Promise((r) => setTimeout(r, 200)),
      });
      const status = await serverStatus('PUT', url);
      await assertUnchanged(before, `truncated manifest PUT (${hangUp})`);
      await assertNoManifest(name, 'v1');
      if (status !== undefined) assert.ok(status >= 400 && status < 500, `truncated manifest PUT (${hangUp}): the server answered with ${status}, not a 4xx`);
      assertAnswerIfAny(result, 400, 'SIZE_INVALID', `truncated manifest PUT (${hangUp})`);
    });
  }
});

describe('Content-Length and Content-Range', () => {
  it('PATCH with Content-Range 0-99 but Content-Length 50: 400 BLOB_UPLOAD_INVALID, session untouched', async () => {
    const name = repo('cl-mismatch');
    const blob = randomBlob(300);
    const url = await openSession(name);
    const before = await snapshot();
    const res = await fetch(url, {
      method: 'PATCH',
      headers: { 'content-type': 'application/octet-stream', 'content-range': '0-99' },
      body: blob.bytes.subarray(0, 50),
    });
    await expectError(res, 400, 'BLOB_UPLOAD_INVALID', 'Content-Range 0-99 with 50 bytes');
    await assertUnchanged(before, 'Content-Range 0-99 with 50 bytes');
    await assertSessionAt(url, 0, 'Content-Range 0-99 with 50 bytes');
    await finishUpload(url, name, blob, 0);
  });

  it('PATCH with Content-Range 100-199 but a 250-byte chunked body: 400 BLOB_UPLOAD_INVALID, session untouched', async () => {
    const name = repo('range-too-long');
    const blob = randomBlob(400);
    const url = await openSession(name, blob.bytes.subarray(0, 100));
    const before = await snapshot();
    const result = await rawRequest({
      url,
      method: 'PATCH',
      headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': '100-199' },
      body: [blob.bytes.subarray(100, 200), blob.bytes.subarray(200, 350)],
      chunked: true,
    });
    expectRawError(result, 400, 'BLOB_UPLOAD_INVALID', 'Content-Range 100-199 with 250 bytes');
    await untilUnlocked(sessionId(url));
    await assertUnchanged(before, 'Content-Range 100-199 with 250 bytes');
    await assertSessionAt(url, 100, 'Content-Range 100-199 with 250 bytes');
    await finishUpload(url, name, blob, 100);
  });

  it('PATCH with Content-Range 100-199 but a 50-byte chunked body: 400 BLOB_UPLOAD_INVALID, session untouched', async () => {
    const name = repo('range-too-short');
    const blob = randomBlob(400);
    const url = await openSession(name, blob.bytes.subarray(0, 100));
    const before = await snapshot();
    const result = await rawRequest({
      url,
      method: 'PATCH',
      headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': '100-199' },
      body: [blob.bytes.subarray(100, 150)],
      chunked: true,
    });
    expectRawError(result, 400, 'BLOB_UPLOAD_INVALID', 'Content-Range 100-199 with 50 bytes');
    await assertUnchanged(before, 'Content-Range 100-199 with 50 bytes');
    await assertSessionAt(url, 100, 'Content-Range 100-199 with 50 bytes');
    await finishUpload(url, name, blob, 100);
  });

  it('a chunk out of order (Content-Range past the offset): 416 RANGE_INVALID with the current Range, session usable', async () => {
    const name = repo('out-of-order');
    const blob = randomBlob(300);
    const url = await openSession(name, blob.bytes.subarray(0, 100));
    const before = await snapshot();
    const res = await fetch(url, {
      method: 'PATCH',
      headers: { 'content-type': 'application/octet-stream', 'content-range': '200-299' },
      body: blob.bytes.subarray(200, 300),
    });
    assert.equal(res.headers.get('range'), '0-99', 'a 416 names the current offset');
    await expectError(res, 416, 'RANGE_INVALID', 'chunk out of order');
    await assertUnchanged(before, 'chunk out of order');
    await assertSessionAt(url, 100, 'chunk out of order');
    await finishUpload(url, name, blob, 100);
  });

  it('a repeated chunk (Content-Range before the offset): 416 RANGE_INVALID with the current Range, session usable', async () => {
    const name = repo('repeated-chunk');
    const blob = randomBlob(300);
    const url = await openSession(name, blob.bytes.subarray(0, 100));
    const before = await snapshot();
    const res = await fetch(url, {
      method: 'PATCH',
      headers: { 'content-type': 'application/octet-stream', 'content-range': '0-99' },
      body: blob.bytes.subarray(0, 100),
    });
    assert.equal(res.headers.get('range'), '0-99', 'a 416 names the current offset');
    await expectError(res, 416, 'RANGE_INVALID', 'repeated chunk');
    await assertUnchanged(before, 'repeated chunk');
    await assertSessionAt(url, 100, 'repeated chunk');
    await finishUpload(url, name, blob, 100);
  });

  it('a final PUT whose last chunk is out of order: 416 with the current Range, session usable', async () => {
    const name = repo('put-out-of-order');
    const blob = randomBlob(300);
    const url = await openSession(name, blob.bytes.subarray(0, 100));
    const before = await snapshot();
    const res = await fetch(`${url}?digest=${blob.digest}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/octet-stream', 'content-range': '150-299' },
      body: blob.bytes.subarray(150),
    });
    assert.equal(res.headers.get('range'), '0-99', 'a 416 names the current offset');
    await expectError(res, 416, 'RANGE_INVALID', 'PUT chunk out of order');
    await assertUnchanged(before, 'PUT chunk out of order');
    await assertSessionAt(url, 100, 'PUT chunk out of order');
    await finishUpload(url, name, blob, 100);
  });

  it('a second PATCH while another request is writing the session: 416 with the committed Range, session usable', async () => {
    const name = repo('busy');
    const blob = randomBlob(50_000);
    const url = await openSession(name, blob.bytes.subarray(0, 1000));
    const before = await snapshot();
    let second: Response | undefined;
    let secondText = '';
    await rawRequest({
      url,
      method: 'PATCH',
      headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(blob.size - 1000) },
      body: blob.bytes.subarray(1000, 10_000),
      after: 'destroy',
      beforeHangUp: async () => {
        await untilServerHas(name, 10_000);
        second = await fetch(url, {
          method: 'PATCH',
          headers: { 'content-type': 'application/octet-stream', 'content-range': `1000-${blob.size - 1}` },
          body: blob.bytes.subarray(1000),
        });
        secondText = await second.clone().text();
      },
    });
    assert.ok(second, 'second PATCH sent');
    assert.equal(second.status, 416, `second PATCH: ${secondText}`);
    assert.equal(second.headers.get('range'), '0-999', 'a 416 names the committed offset');
    await expectError(second, 416, 'BLOB_UPLOAD_INVALID', 'concurrent PATCH');
    await untilUnlocked(sessionId(url));
    await assertUnchanged(before, 'concurrent PATCH');
    await assertSessionAt(url, 1000, 'concurrent PATCH');
    await finishUpload(url, name, blob, 1000);
  });

  // Through the cluster's test proxy the proxy's own HTTP parser would answer; the node's parser is the same code as embedded mode's.
  it('a malformed Content-Length header: 400 SIZE_INVALID in OCI error JSON, session untouched', {
    skip: behindTestProxy() && 'the test proxy parses headers before any node sees them',
  }, async () => {
    const name = repo('bad-cl');
    const blob = randomBlob(300);
    const url = await openSession(name, blob.bytes.subarray(0, 100));
    const before = await snapshot();
    const result = await rawRequest({
      url,
      method: 'PATCH',
      headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': '12abc' },
      body: blob.bytes.subarray(100, 112),
    });
    await assertUnchanged(before, 'malformed Content-Length');
    await assertSessionAt(url, 100, 'malformed Content-Length');
    await finishUpload(url, name, blob, 100);
    expectRawError(result, 400, 'SIZE_INVALID', 'malformed Content-Length');
  });
});

describe('sessions that are over', () => {
  for (const ending of ['cancelled', 'completed'] as const) {
    it(`a ${ending} session: GET, PATCH, PUT and DELETE are 404 BLOB_UPLOAD_UNKNOWN, and its bytes are not left behind`, async () => {
      const name = repo(`over-${ending}`);
      const blob = randomBlob(300);
      const before = await snapshot();
      const url = await openSession(name, blob.bytes.subarray(0, 100));
      if (ending === 'cancelled') {
        const del = await fetch(url, { method: 'DELETE' });
        assert.equal(del.status, 204);
        await assertUnchanged(before, 'cancel');
      } else {
        await finishUpload(url, name, blob, 100);
      }
      const after = await snapshot();
      await expectError(await fetch(url), 404, 'BLOB_UPLOAD_UNKNOWN', `GET ${ending}`);
      await expectError(
        await fetch(url, { method: 'PATCH', headers: { 'content-type': 'application/octet-stream', 'content-range': '100-199' }, body: blob.bytes.subarray(100, 200) }),
        404,
        'BLOB_UPLOAD_UNKNOWN',
        `PATCH ${ending}`,
      );
      await expectError(await fetch(`${url}?digest=${blob.digest}`, { method: 'PUT' }), 404, 'BLOB_UPLOAD_UNKNOWN', `PUT ${ending}`);
      await expectError(await fetch(url, { method: 'DELETE' }), 404, 'BLOB_UPLOAD_UNKNOWN', `DELETE ${ending}`);
      await assertUnchanged(after, `requests to a ${ending} session`);
    });
  }
});

describe('upload session ids', () => {
  const unknownUuid = '0b8a3f52-9c1e-4d6a-8f0e-2b7c5d9e1a34';
  const ids: Array<[string, string]> = [
    ['an unknown uuid', unknownUuid],
    ['a non-uuid id', 'not-a-uuid'],
    ['an upper-case uuid', unknownUuid.toUpperCase()],
  ];
  for (const [label, id] of ids) {
    for (const method of ['GET', 'PATCH', 'PUT', 'DELETE'] as const) {
      it(`${method} of ${label}: 404 BLOB_UPLOAD_UNKNOWN`, async () => {
        const name = repo('unknown-session');
        const blob = randomBlob(64);
        const before = await snapshot();
        const query = method === 'PUT' ? `?digest=${blob.digest}` : '';
        const init: RequestInit = { method };
        if (method === 'PATCH' || method === 'PUT') {
          init.body = blob.bytes;
          init.headers = { 'content-type': 'application/octet-stream' };
        }
        const res = await fetch(`${base}/v2/${name}/blobs/uploads/${id}${query}`, init);
        await expectError(res, 404, 'BLOB_UPLOAD_UNKNOWN', `${method} ${label}`);
        await assertUnchanged(before, `${method} ${label}`);
      });
    }
  }

  for (const method of ['GET', 'PATCH', 'PUT', 'DELETE'] as const) {
    it(`${method} of a session under another repository's name: 404 BLOB_UPLOAD_UNKNOWN, the session is untouched`, async () => {
      const name = repo('session-owner');
      const other = repo('session-thief');
      const blob = randomBlob(200);
      const url = await openSession(name, blob.bytes.subarray(0, 100));
      const id = sessionId(url);
      const before = await snapshot();
      const query = method === 'PUT' ? `?digest=${blob.digest}` : '';
      const init: RequestInit = { method };
      if (method === 'PATCH' || method === 'PUT') {
        init.body = blob.bytes.subarray(100);
        init.headers = { 'content-type': 'application/octet-stream', 'content-range': '100-199' };
      }
      const res = await fetch(`${base}/v2/${other}/blobs/uploads/${id}${query}`, init);
      await expectError(res, 404, 'BLOB_UPLOAD_UNKNOWN', `${method} under another name`);
      await assertUnchanged(before, `${method} under another name`);
      assert.equal(await repositoryExists(other), false);
      await assertSessionAt(url, 100, `${method} under another name`);
      await finishUpload(url, name, blob, 100);
      const elsewhere = await fetch(`${base}/v2/${other}/blobs/${blob.digest}`, { method: 'HEAD' });
      assert.equal(elsewhere.status, 404, 'the blob must not be linked under the other name');
    });
  }
});
