/**
 * Real clients through the pull-through cache: skopeo and podman pull a multi-layer image, a
 * two-platform index and an artifact with referrers from Distribution 2.8.2 through Wharf; then
 * the upstream is stopped and the same pulls, by tag and by digest, still succeed.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { DISTRIBUTION, startDistribution, type Distribution } from './helpers/distribution.js';
import { buildArtifact, buildImage, buildIndex, readOciLayout, type Content } from './helpers/oci-layout.js';
import { skopeoSandbox } from './helpers/skopeo-sandbox.js';
import { startTestWharf, type TestWharf } from './helpers/server.js';
import { pushContent, putManifestBytes } from './helpers/upstream-push.js';

const run = promisify(execFile);
const TIMEOUT_MS = 120_000;
const has = (cmd: string) =>
  run(cmd, ['--version']).then(
    () => true,
    () => false,
  );
const missing = [!existsSync(DISTRIBUTION) && 'docker-registry', !(await has('skopeo')) && 'skopeo', !(await has('podman')) && 'podman'].filter(Boolean);

describe('skopeo and podman pull through the cache, and keep pulling with the upstream down', { skip: missing.length ? `not installed: ${missing.join(', ')}` : false }, () => {
  let upstream: Distribution;
  let wharf: TestWharf;
  let host: string;
  let tmp: string;
  let env: NodeJS.ProcessEnv;
  const image = buildImage({ layers: 3 });
  const index = buildIndex();
  const sbom = buildArtifact({ subject: image.descriptor });

  async function tool(cmd: string, args: string[]): Promise<string> {
    try {
      return (await run(cmd, args, { env, timeout: TIMEOUT_MS, killSignal: 'SIGKILL', maxBuffer: 16 * 1024 * 1024 })).stdout;
    } catch (err) {
      const e = err as Error & { stderr?: string };
      throw new Error(`${cmd} ${args.join(' ')}: ${e.stderr ?? e.message}`);
    }
  }
  const skopeo = (...args: string[]) => tool('skopeo', ['--insecure-policy', '--registries.d', join(tmp, 'registries.d'), ...args]);
  const podman = (...args: string[]) =>
    tool('podman', [
      '--root',
      join(tmp, 'podman-root'),
      '--runroot',
      join(tmp, 'podman-run'),
      '--storage-driver',
      'vfs',
      '--cgroup-manager',
      'cgroupfs',
      '--events-backend',
      'none',
      ...args,
    ]);
  const ref = (repo: string, tagOrDigest: string) => `${host}/${repo}${tagOrDigest.startsWith('sha256:') ? '@' : ':'}${tagOrDigest}`;
  let copies = 0;

  /** skopeo copy --all from the cache into a fresh OCI layout; checks every blob of `content` arrived intact. */
  async function skopeoPull(repo: string, tagOrDigest: string, content: Content): Promise<void> {
    const dir = join(tmp, `copy-${copies++}`);
    await skopeo('copy', '--all', '--preserve-digests', '--src-tls-verify=false', `docker://${ref(repo, tagOrDigest)}`, `oci:${dir}:x`);
    const layout = await readOciLayout(dir);
    assert.equal(layout.descriptorFor('x')?.digest, content.digest);
    assert.deepEqual(await layout.verify(), []);
    for (const blob of content.blobs) assert.ok(layout.blobDigests.includes(blob.digest), `${blob.digest} missing from the copy`);
  }

  async function podmanPull(repo: string, tagOrDigest: string, configDigest: string): Promise<void> {
    await podman('pull', '--tls-verify=false', ref(repo, tagOrDigest));
    const id = (await podman('image', 'inspect', '--format', '{{.Id}}', ref(repo, tagOrDigest))).trim();
    assert.equal(`sha256:${id}`, configDigest);
    await podman('rmi', '--force', ref(repo, tagOrDigest));
  }

  before(async () => {
    ({ tmp, env } = await skopeoSandbox('wharf-proxy-clients-'));
    for (const d of ['podman-root', 'podman-run']) await mkdir(join(tmp, d));
    await writeFile(env.REGISTRY_AUTH_FILE!, '{"auths":{}}'); // podman insists the auth file exists
    upstream = await startDistribution();
    await pushContent(upstream.url, 'team/app', image, 'v1');
    await pushContent(upstream.url, 'team/multi', index, 'v1');
    await pushContent(upstream.url, 'team/app', sbom);
    const fallback = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [sbom.descriptor] }));
    await putManifestBytes(upstream.url, 'team/app', `sha256-${image.digest.slice(7)}`, 'application/vnd.oci.image.index.v1+json', fallback);
    // ttl 1s: with the upstream stopped, every tag pull below has to revalidate, fail, and serve what is cached.
    wharf = await startTestWharf({ 'proxy.upstreams': [{ name: 'dist', url: upstream.url, prefix: 'dist', ttl: '1s', timeout: '5s' }] });
    host = new URL(wharf.base).host;
  });
  after(async () => {
    await wharf?.close();
    await upstream?.close();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('skopeo pulls a multi-layer image, a two-platform index and an artifact through the cache', async () => {
    await skopeoPull('dist/team/app', 'v1', image);
    await skopeoPull('dist/team/multi', 'v1', index);
    const referrers = (await (await fetch(`${wharf.base}/v2/dist/team/app/referrers/${image.digest}`)).json()) as { manifests: Array<{ digest: string }> };
    assert.deepEqual(
      referrers.manifests.map((m) => m.digest),
      [sbom.digest],
    );
    const raw = await skopeo('inspect', '--raw', '--tls-verify=false', `docker://${ref('dist/team/app', sbom.digest)}`);
    assert.equal(raw, sbom.bytes.toString());
    const layer = await fetch(`${wharf.base}/v2/dist/team/app/blobs/${sbom.layers[0]!.digest}`);
    assert.deepEqual(Buffer.from(await layer.arrayBuffer()), sbom.layers[0]!.bytes);
  });

  it('podman pulls the image and one platform of the index through the cache', async () => {
    await podmanPull('dist/team/app', 'v1', image.config.digest);
    await podmanPull('dist/team/multi', 'v1', index.manifests[0]!.config.digest);
  });

  it('with the upstream stopped, the same pulls still succeed by tag and by digest', async () => {
    await upstream.stop();
    try {
      await skopeoPull('dist/team/app', 'v1', image);
      await skopeoPull('dist/team/app', image.digest, image);
      await skopeoPull('dist/team/multi', 'v1', index);
      await skopeoPull('dist/team/multi', index.digest, index);
      await podmanPull('dist/team/app', 'v1', image.config.digest);
      await podmanPull('dist/team/app', image.digest, image.config.digest);
      await podmanPull('dist/team/multi', 'v1', index.manifests[0]!.config.digest);
      const referrers = (await (await fetch(`${wharf.base}/v2/dist/team/app/referrers/${image.digest}`)).json()) as { manifests: Array<{ digest: string }> };
      assert.deepEqual(
        referrers.manifests.map((m) => m.digest),
        [sbom.digest],
      );
      const metrics = await (await fetch(`${wharf.base}/metrics`)).text();
      assert.match(metrics, /wharf_proxy_requests_total\{upstream="dist",kind="manifest",result="stale"\} [1-9]/);
    } finally {
      await upstream.start();
    }
  });
});
