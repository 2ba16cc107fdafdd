/**
 * The resumable SHA-256 of upload sessions: the native addon (OpenSSL) and the hash-wasm fallback
 * save one portable state, so a session hashed by either finishes on the other with the right
 * digest; states saved by hash-wasm itself (sessions from before the portable form) still resume;
 * an unknown state ends the upload with a clear 400.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { createSHA256 } from 'hash-wasm';
import { openHash, type HashImplementation } from '../libs/hashing/hash-pool.js';
import { nativeSha256, nativeSha256Error } from '../libs/hashing/sha256-native.js';
import { HashStateError, decodeState, initialHashState } from '../libs/hashing/saved-hash-state.js';
import { sha256 } from './helpers/oci.js';
import { startTestWharf, type TestWharf } from './helpers/server.js';

const data = randomBytes(200_000);
const SPLITS = [0, 1, 63, 64, 65, 127, 4096 + 17, 150_000];
const nativeSkip = nativeSha256() ? false : `native SHA-256 addon not loaded: ${nativeSha256Error()}`;

async function hashAcross(first: HashImplementation, second: HashImplementation, split: number): Promise<string> {
  const a = await openHash(null, first);
  await a.update(data.subarray(0, split));
  const saved = await a.save();
  a.close();
  const b = await openHash(saved, second);
  await b.update(data.subarray(split, split + 1000));
  await b.update(data.subarray(split + 1000));
  const digest = await b.digest();
  b.close();
  return digest;
}

describe('portable SHA-256 state', () => {
  it('the addon is built and loads (npm ci builds it when a C compiler is there)', { skip: nativeSkip }, () => {
    assert.ok(nativeSha256());
  });

  for (const [first, second] of [
    ['native', 'wasm'],
    ['wasm', 'native'],
    ['native', 'native'],
    ['wasm', 'wasm'],
  ] as Array<[HashImplementation, HashImplementation]>) {
    const skip = first === 'native' || second === 'native' ? nativeSkip : false;
    it(`a session hashed by ${first} finishes on ${second} with the right digest`, { skip }, async () => {
      for (const split of SPLITS) assert.equal(await hashAcross(first, second, split), sha256(data), `split at ${split}`);
    });
  }

  it('both implementations save byte-identical states', { skip: nativeSkip }, async () => {
    for (const split of SPLITS) {
      const states = await Promise.all(
        (['native', 'wasm'] as const).map(async (impl) => {
          const h = await openHash(initialHashState(), impl);
          await h.update(data.subarray(0, split));
          const s = await h.save();
          h.close();
          return s;
        }),
      );
      assert.deepEqual(states[0], states[1], `split at ${split}`);
      assert.equal(decodeState(states[0]!).count, split);
    }
  });

  it("resumes hash-wasm's own saved state (sessions from before the portable form)", async () => {
    const legacy = await createSHA256();
    legacy.init().update(data.subarray(0, 1000));
    for (const impl of (nativeSkip ? ['wasm'] : ['native', 'wasm']) as HashImplementation[]) {
      const h = await openHash(Buffer.from(legacy.save()), impl);
      await h.update(data.subarray(1000));
      assert.equal(await h.digest(), sha256(data), impl);
      h.close();
    }
  });

  it('refuses a state in an unknown format', async () => {
    for (const garbage of [Buffer.alloc(0), Buffer.from('not a hash state'), Buffer.alloc(116, 1), Buffer.concat([initialHashState(), Buffer.from('x')])]) {
      await assert.rejects(openHash(garbage), HashStateError);
    }
  });
});

describe('upload sessions and their saved hash', () => {
  let wharf: TestWharf;
  before(async () => {
    wharf = await startTestWharf();
  });
  after(async () => wharf?.close());

  async function startUpload(name: string, first: Buffer): Promise<{ id: string; location: string }> {
    const post = await fetch(`${wharf.base}/v2/${name}/blobs/uploads/`, { method: 'POST' });
    assert.equal(post.status, 202);
    const location = new URL(post.headers.get('location')!, wharf.base).toString();
    const patch = await fetch(location, {
      method: 'PATCH',
      headers: { 'content-type': 'application/octet-stream', 'content-range': `0-${first.length - 1}` },
      body: new Uint8Array(first),
    });
    assert.equal(patch.status, 202);
    const id = location.split('/').pop()!.split('?')[0]!;
    return { id, location: new URL(patch.headers.get('location')!, wharf.base).toString() };
  }

  const setState = (id: string, state: Buffer) => wharf.database.db.updateTable('uploads').set({ hash_state: state }).where('id', '=', id).execute();

  it('a session whose state hash-wasm saved finishes with the right digest', async () => {
    const blob = randomBytes(5000);
    const { id, location } = await startUpload('hash/legacy', blob.subarray(0, 3000));
    const legacy = await createSHA256();
    legacy.init().update(blob.subarray(0, 3000));
    await setState(id, Buffer.from(legacy.save()));
    const url = new URL(location);
    url.searchParams.set('digest', sha256(blob));
    const put = await fetch(url, {
      method: 'PUT',
      headers: { 'content-type': 'application/octet-stream', 'content-range': `3000-4999` },
      body: new Uint8Array(blob.subarray(3000)),
    });
    assert.equal(put.status, 201, await put.text());
    const get = await fetch(`${wharf.base}/v2/hash/legacy/blobs/${sha256(blob)}`);
    assert.deepEqual(Buffer.from(await get.arrayBuffer()), blob);
  });

  it('a session whose saved state no implementation knows gets 400 BLOB_UPLOAD_INVALID', async () => {
    const { id, location } = await startUpload('hash/foreign', randomBytes(100));
    await setState(id, Buffer.from('written by something else'));
    const patch = await fetch(location, {
      method: 'PATCH',
      headers: { 'content-type': 'application/octet-stream', 'content-range': '100-199' },
      body: new Uint8Array(randomBytes(100)),
    });
    assert.equal(patch.status, 400);
    const body = (await patch.json()) as { errors: Array<{ code: string; message: string }> };
    assert.equal(body.errors[0]!.code, 'BLOB_UPLOAD_INVALID');
    assert.match(body.errors[0]!.message, /unknown format/);
  });
});
