/**
 * S3 stopping in the middle of a GetObject body: the headers came, then no more bytes (a hung
 * gateway, a black-holing network). The client's blob GET through the node must end, cut off,
 * instead of hanging forever, and the node must let go of its socket to S3.
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { describe, it } from 'node:test';
import { nodesBehindProxy } from '../helpers/cluster.js';
import { pushBlob, randomBlob } from '../helpers/oci.js';
import { eventually } from '../helpers/wait.js';

const MiB = 1024 * 1024;
/** Far more than the socket buffers between S3 and the client hold: the stall lands mid-body. */
const BLOB_BYTES = 64 * MiB;

const suite = nodesBehindProxy({ dependency: 's3', overrides: { 'storage.s3.timeout': 2, 'storage.s3.maxattempts': 2 } });

/** GETs `url`, stalls the proxy once the first body bytes are in, and reads on until the response ends one way or the other. */
function getStallingMidBody(url: string): Promise<{ status: number; received: number; complete: boolean }> {
  return new Promise((resolve, reject) => {
    const req = request(url, (res) => {
      let received = 0;
      res.on('data', (chunk: Buffer) => {
        if (received === 0) suite.proxy.stall();
        received += chunk.length;
      });
      res.on('error', () => {}); // the cut shows as complete: false below
      res.on('close', () => resolve({ status: res.statusCode ?? 0, received, complete: res.complete }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('an S3 body that stalls mid-way', () => {
  it('cuts the blob GET off and frees the socket to S3', async (t) => {
    if (suite.skip) return t.skip(suite.skip);
    const node = suite.nodes[0]!;
    const blob = randomBlob(BLOB_BYTES);
    await pushBlob(node.url, 'stall/app', blob);
    // Drop the node's idle connections to S3: the GET's connection is then the only one.
    await suite.proxy.stop();
    await suite.proxy.start();

    const got = await getStallingMidBody(`${node.url}/v2/stall/app/blobs/${blob.digest}`);
    assert.equal(got.status, 200);
    assert.equal(got.complete, false, 'the response was cut off, not completed');
    assert.ok(got.received < BLOB_BYTES, `received ${got.received} of ${BLOB_BYTES} bytes`);

    // Forwarding again, the proxy sees that the node closed its end; a socket the node still held would stay open.
    suite.proxy.resume();
    await eventually(() => assert.equal(suite.proxy.connections, 0, 'connections through the proxy to S3'));

    const again = await fetch(`${node.url}/v2/stall/app/blobs/${blob.digest}`);
    assert.equal(again.status, 200);
    assert.ok(Buffer.from(await again.arrayBuffer()).equals(blob.bytes), 'the blob reads whole once S3 answers again');
  });
});
