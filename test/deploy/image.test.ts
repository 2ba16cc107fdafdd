/**
 * The Wharf image alone, as `docker run` users start it: the default command (`wharf all`,
 * embedded PostgreSQL and blobs under /data), data on a named volume that survives a restart
 * of the container, the HEALTHCHECK passing, the `wharf` command on PATH.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildImage, writeOciLayout } from '../helpers/oci-layout.js';
import { skopeoSandbox } from '../helpers/skopeo-sandbox.js';
import { eventually } from '../helpers/wait.js';
import { WHARF_IMAGE, commandExists, ensureImages, podman, rssMiB, sh } from './podman.js';

const PORT = 23500;
const BASE = `http://127.0.0.1:${PORT}`;
const NAME = 'wharf-image-alone';
const VOLUME = 'wharf-image-alone-data';
const missing = ['podman', 'skopeo', 'mmdebstrap'].filter((c) => !commandExists(c));

describe('the Wharf image alone', { skip: missing.length ? `missing: ${missing.join(', ')}` : false, timeout: 3_600_000 }, () => {
  let tmp: string;
  let skopeoEnv: NodeJS.ProcessEnv;
  const image = buildImage({ layers: 3 });

  const serving = () =>
    eventually(
      async () => {
        const res = await fetch(`${BASE}/v2/`).catch(() => undefined);
        assert.equal(res?.status, 200, 'GET /v2/ answers');
      },
      600_000,
      1000,
    );

  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'wharf-image-'));
    ({ env: skopeoEnv } = await skopeoSandbox('wharf-image-skopeo-'));
    await ensureImages();
    await podman('rm', '-f', NAME).catch(() => '');
    await podman('volume', 'rm', '-f', VOLUME).catch(() => '');
  });
  after(async () => {
    await podman('rm', '-f', NAME).catch(() => '');
    await podman('volume', 'rm', '-f', VOLUME).catch(() => '');
    await rm(tmp, { recursive: true, force: true });
  });

  it('serves with its default command, data on a volume, published on loopback', async () => {
    await podman('run', '-d', '--name', NAME, '-p', `127.0.0.1:${PORT}:5000`, '-v', `${VOLUME}:/data`, WHARF_IMAGE);
    await serving();
    const config = JSON.parse(await podman('image', 'inspect', WHARF_IMAGE)) as Array<{
      Config: { Cmd: string[]; Entrypoint: string[]; User: string; Volumes: Record<string, unknown> };
    }>;
    assert.deepEqual(config[0]!.Config.Cmd, ['all']);
    assert.deepEqual(config[0]!.Config.Entrypoint, ['wharf']);
    assert.equal(config[0]!.Config.User, 'node');
    assert.ok('/data' in config[0]!.Config.Volumes);
    const dir = join(tmp, 'layout');
    await writeOciLayout(dir, { v1: image });
    await sh('skopeo', ['--insecure-policy', 'copy', '--dest-tls-verify=false', `oci:${dir}:v1`, `docker://127.0.0.1:${PORT}/alone/app:v1`], { env: skopeoEnv });
    console.log(`rss: wharf all (embedded) after one push: ${await rssMiB(NAME)} MiB (node only; embedded PostgreSQL runs beside it)`);
  });

  it('passes its HEALTHCHECK, and has wharf on PATH with the native SHA-256 addon', async () => {
    await podman('healthcheck', 'run', NAME);
    const help = await podman('exec', NAME, 'wharf', 'help');
    assert.match(help, /usage: wharf <command>/);
    await podman('exec', NAME, 'node', '-e', "require('/app/libs/hashing/build/Release/wharf_sha256.node')");
  });

  it('keeps the data across a restart of the container', async () => {
    await podman('restart', NAME);
    await serving();
    const res = await fetch(`${BASE}/v2/alone/app/manifests/v1`, { method: 'HEAD', headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('docker-content-digest'), image.descriptor.digest);
    await podman('rm', '-f', NAME);
    await podman('run', '-d', '--name', NAME, '-p', `127.0.0.1:${PORT}:5000`, '-v', `${VOLUME}:/data`, WHARF_IMAGE);
    await serving();
    const again = await fetch(`${BASE}/v2/alone/app/tags/list`);
    assert.deepEqual(((await again.json()) as { tags: string[] }).tags, ['v1'], 'a new container on the same volume has the tag');
  });
});
