/**
 * S3 going away in the middle of pushes, on two nodes: stopped (the radosgw process itself when
 * the suite runs on scripts/rgw.sh's RGW, else the TCP path to it) and hung (a proxy that holds
 * every byte). Each request meanwhile answers 503 with Retry-After within the S3 timeout and
 * attempts; the session keeps its committed offset; afterwards the same push completes and
 * nothing half-written is left.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { describe, it } from 'node:test';
import { openDatabase } from '../../libs/metadata/index.js';
import { reconcile } from '../../services/cli/reconcile.js';
import { openBlobStore } from '../../services/cli/parts.js';
import { nodesBehindProxy } from '../helpers/cluster.js';
import { blobOf, type Blob } from '../helpers/oci.js';
import { eventually } from '../helpers/wait.js';

const MiB = 1024 * 1024;
const rgwDir = process.env.WHARF_TEST_RGW_DIR;
const rgw = (command: string) => promisify(execFile)('bash', ['scripts/rgw.sh', command, rgwDir!]);

const suite = nodesBehindProxy({
  dependency: 's3',
  overrides: { 'storage.s3.timeout': 2, 'storage.s3.maxattempts': 2, 'storage.s3.partsize': 5 * MiB },
  count: 2,
  // Whatever happened below, the gateway runs again for the suites after this one.
  teardown: async () => void (rgwDir && (await rgw('gateway-start').catch(() => {}))),
});
const { nodes } = suite;

/** S3 taken away: the radosgw process when there is one to stop, else every connection to it. */
const outage = {
  stop: () => (rgwDir ? rgw('gateway-stop').then(() => {}) : suite.proxy.stop()),
  start: () => (rgwDir ? rgw('gateway-start').then(() => {}) : suite.proxy.start()),
};

async function patch(location: string, body: Buffer<ArrayBuffer>, from: number): Promise<Response> {
  return fetch(location, {
    method: 'PATCH',
    headers: { 'content-type': 'application/octet-stream', 'content-range': `${from}-${from + body.length - 1}`, 'content-length': String(body.length) },
    body,
  });
}

async function unavailable(res: Response): Promise<void> {
  assert.equal(res.status, 503, `expected 503, got ${res.status}: ${await res.clone().text()}`);
  assert.ok(Number(res.headers.get('retry-after')) > 0, 'Retry-After is set');
  const error = ((await res.json()) as { errors: Array<{ code: string }> }).errors[0]!;
  assert.equal(error.code, 'UNAVAILABLE');
}

/** A chunked push: POST on node 0, first chunk on node 1; returns the session's URL on node 0. */
async function startedPush(name: string, first: Buffer<ArrayBuffer>): Promise<string> {
  const post = await fetch(`${nodes[0]!.url}/v2/${name}/blobs/uploads/`, { method: 'POST' });
  assert.equal(post.status, 202);
  const path = post.headers.get('location')!;
  const res = await patch(new URL(path, nodes[1]!.url).toString(), first, 0);
  assert.equal(res.status, 202, await res.text());
  return new URL(path, nodes[0]!.url).toString();
}

async function finishAndRead(name: string, location: string, blob: Blob): Promise<void> {
  const put = await fetch(`${location}${location.includes('?') ? '&' : '?'}digest=${blob.digest}`, { method: 'PUT' });
  assert.equal(put.status, 201, await put.text());
  const back = Buffer.from(await (await fetch(`${nodes[1]!.url}/v2/${name}/blobs/${blob.digest}`)).arrayBuffer());
  assert.ok(back.equals(blob.bytes), 'the blob reads back whole');
}

async function offset(location: string): Promise<string | null> {
  const res = await fetch(location);
  assert.equal(res.status, 204);
  return res.headers.get('range');
}

async function noOrphans(): Promise<void> {
  const store = await openBlobStore({ ...suite.config, 'storage.s3.endpoint': suite.services.s3.endpoint });
  const db = openDatabase({ url: suite.config['database.url'], poolSize: 1, uploadPoolSize: 1 });
  try {
    const report = await reconcile(db.db, store, { apply: false, minAgeSeconds: 0 });
    assert.deepEqual(report.orphans, [], 'every object is named by metadata');
    assert.deepEqual(report.strayUploads, [], 'every multipart upload is owned by a session');
    assert.deepEqual(report.missing, []);
  } finally {
    await db.close();
    (store as { destroy?: () => void }).destroy?.();
  }
}

describe('S3 stopped or hung during pushes', () => {
  it(`S3 stopped (${rgwDir ? 'radosgw process stopped' : 'connections cut'}): 503 with Retry-After, the offset kept; afterwards the push completes`, async (t) => {
    if (suite.skip) return t.skip(suite.skip);
    const name = 'outage/stopped';
    const bytes = randomBytes(7 * MiB + 3) as Buffer<ArrayBuffer>;
    const blob = blobOf(bytes);
    const cut = 6 * MiB;
    const location = await startedPush(name, bytes.subarray(0, cut));
    assert.equal(await offset(location), `0-${cut - 1}`);

    await outage.stop();
    await unavailable(await patch(location, bytes.subarray(cut), cut));
    assert.equal(await offset(location), `0-${cut - 1}`, 'the failed PATCH moved nothing');
    const other = blobOf(randomBytes(1000));
    const mono = await fetch(`${nodes[1]!.url}/v2/${name}/blobs/uploads/?digest=${other.digest}`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(other.size) },
      body: other.bytes,
    });
    await unavailable(mono);

    await outage.start();
    const res = await eventually(
      async () => {
        const r = await patch(location, bytes.subarray(cut), cut);
        assert.equal(r.status, 202);
        return r;
      },
      60_000,
      500,
    );
    await res.arrayBuffer();
    await finishAndRead(name, location, blob);
    assert.equal((await fetch(`${nodes[0]!.url}/v2/${name}/blobs/${other.digest}`, { method: 'HEAD' })).status, 404, 'the refused push left no blob');
  });

  it('S3 hung (a proxy holds every byte): 503 with Retry-After once the attempts time out; afterwards the push completes', async (t) => {
    if (suite.skip) return t.skip(suite.skip);
    const name = 'outage/hung';
    const bytes = randomBytes(5 * MiB + 4321) as Buffer<ArrayBuffer>;
    const blob = blobOf(bytes);
    const cut = 2 * MiB;
    const location = await startedPush(name, bytes.subarray(0, cut));

    suite.proxy.stall();
    try {
      await unavailable(await patch(location, bytes.subarray(cut), cut));
    } finally {
      suite.proxy.resume();
    }
    assert.equal(await offset(location), `0-${cut - 1}`);
    const res = await patch(location, bytes.subarray(cut), cut);
    assert.equal(res.status, 202, await res.text());
    await finishAndRead(name, location, blob);
  });

  it('afterwards the bucket holds exactly what metadata names', async (t) => {
    if (suite.skip) return t.skip(suite.skip);
    await noOrphans();
  });
});
