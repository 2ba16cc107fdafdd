/**
 * The test harness's testcontainers path, run for real: with no WHARF_TEST_DATABASE_URL or
 * WHARF_TEST_NATS_URL, cluster-mode suites find PostgreSQL and NATS by starting containers through
 * a Docker API (here podman's, on a private socket) from the images docker-compose.yml pins (the
 * stand-ins of deploy/local-images.sh on this machine). Ryuk, testcontainers' reaper, is an image
 * that cannot be pulled here: it is turned off, and the suites stop their own containers.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { NATS_IMAGE, POSTGRES_IMAGE } from '../helpers/services.js';
import { ROOT, commandExists, ensureImages, podman, startDockerApi } from './podman.js';

const missing = ['podman', 'mmdebstrap'].filter((c) => !commandExists(c));
const SUITES = ['test/cluster/event-delivery.test.ts', 'test/cluster/local-cluster.test.ts'];
const LABEL = 'org.testcontainers=true';

async function testcontainersLeft(): Promise<string[]> {
  return (await podman('ps', '-a', '-q', '--filter', `label=${LABEL}`)).split('\n').filter(Boolean);
}

describe('cluster suites on containers started by testcontainers', { skip: missing.length ? `missing: ${missing.join(', ')}` : false, timeout: 3_600_000 }, () => {
  let api: Awaited<ReturnType<typeof startDockerApi>> | undefined;

  before(async () => {
    await ensureImages();
    api = await startDockerApi();
  });
  after(async () => {
    await api?.close();
  });

  it('starts the images docker-compose.yml pins', async () => {
    const compose = await readFile(join(ROOT, 'docker-compose.yml'), 'utf8');
    for (const image of [POSTGRES_IMAGE, NATS_IMAGE]) assert.match(compose, new RegExp(`^\\s*image: ${image.replaceAll('.', '\\.')}$`, 'm'), image);
  });

  it('runs cluster-mode suites with PostgreSQL and NATS in containers, none skipped, and leaves no container behind', async () => {
    const before = await testcontainersLeft();
    // NODE_TEST_CONTEXT would make the child a subtest of this run, which then runs no files.
    const { WHARF_TEST_DATABASE_URL: _db, WHARF_TEST_NATS_URL: _nats, NODE_TEST_CONTEXT: _context, ...env } = process.env;
    const child = spawn(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=1', '--test-reporter=tap', ...SUITES], {
      cwd: ROOT,
      env: { ...env, WHARF_TEST_MODE: 'cluster', DOCKER_HOST: api!.dockerHost, TESTCONTAINERS_RYUK_DISABLED: 'true' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    const count = (name: string) => Number(new RegExp(`^# ${name} (\\d+)$`, 'm').exec(out)?.[1] ?? Number.NaN);
    assert.equal(code, 0, out.slice(-6000));
    assert.ok(count('pass') > 0, out.slice(-3000));
    assert.equal(count('skipped'), 0, `a suite skipped: ${out.slice(-3000)}`);
    assert.equal(count('fail'), 0, out.slice(-3000));
    assert.deepEqual(await testcontainersLeft(), before);
  });
});
