import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { randomBlob, pushBlob } from '../helpers/oci.js';
import { freePort } from '../helpers/processes.js';
import { clusterSuite } from '../helpers/services.js';

let dataDir: string;

const suite = clusterSuite({
  async teardown() {
    await rm(dataDir, { recursive: true, force: true });
  },
});
before(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'wharf-local-cluster-'));
});

describe('npm run cluster', () => {
  it('starts N nodes that share everything, prints one line per node, and stops on SIGINT', async (t) => {
    if (suite.skip) return t.skip(suite.skip);
    const port = await freePort();
    const run = randomBytes(4).toString('hex');
    const child = spawn(process.execPath, ['dist/services/cli/cluster.js', '--nodes', '2', '--port', String(port)], {
      env: {
        PATH: process.env.PATH,
        WHARF_DATABASE_URL: suite.services!.databaseUrl,
        WHARF_NATS_URL: suite.services!.natsUrl,
        WHARF_NATS_STREAM: `WHARF_TEST_${run}`,
        WHARF_NATS_SUBJECTPREFIX: `wharftest${run}.events`,
        WHARF_DATA_DIR: dataDir,
        WHARF_LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      const deadline = Date.now() + 60_000;
      while (!/worker: running/.test(out)) {
        assert.ok(Date.now() < deadline && child.exitCode === null, `cluster did not come up:\n${out}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.match(out, new RegExp(`node 0: http://127\\.0\\.0\\.1:${port}/v2/`));
      assert.match(out, new RegExp(`node 1: http://127\\.0\\.0\\.1:${port + 1}/v2/`));
      const blob = randomBlob(3000);
      await pushBlob(`http://127.0.0.1:${port}`, 'local/cluster', blob);
      const read = await fetch(`http://127.0.0.1:${port + 1}/v2/local/cluster/blobs/${blob.digest}`);
      assert.equal(read.status, 200);
      assert.deepEqual(Buffer.from(await read.arrayBuffer()), blob.bytes);
    } finally {
      child.kill('SIGINT');
      assert.equal(await exited, 0, out);
    }
  });
});
