/**
 * docker-compose.yml run for real, unchanged: stand-in images (deploy/local-images.sh), the
 * Wharf image built once by `docker-compose build`, the cluster started through podman's Docker
 * API, then used through the load balancer on 127.0.0.1:5000 with token auth on. A second,
 * test-only compose file adds what only the test needs: a webhook endpoint on this host and
 * NATS published on loopback for the subscriber. Build times are printed ("timing:").
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connect, type NatsConnection } from 'nats';
import { basic, fetchToken } from '../helpers/auth.js';
import { buildImage, writeOciLayout, type Image } from '../helpers/oci-layout.js';
import { skopeoSandbox } from '../helpers/skopeo-sandbox.js';
import { eventually } from '../helpers/wait.js';
import { ROOT, WHARF_BUILD, commandExists, podman, podmanEnv, sh, startDockerApi, startHealthTicker } from './podman.js';

const BASE = 'http://127.0.0.1:5000';
const PROJECT = 'wharfdeploy';
const HOOK_PORT = 23001;
const NATS_PORT = 23222;
const WAIT_MS = 600_000;
const missing = ['podman', 'docker-compose', 'skopeo', 'mmdebstrap'].filter((c) => !commandExists(c));

interface Hook {
  events: Array<{ id: string; action: string; target: { repository: string; tag?: string; digest: string; url: string } }>;
}

describe('docker-compose.yml on podman', { skip: missing.length ? `missing: ${missing.join(', ')}` : false, timeout: 3_600_000 }, () => {
  let api: Awaited<ReturnType<typeof startDockerApi>>;
  let ticker: ReturnType<typeof startHealthTicker>;
  let tmp: string;
  let override: string;
  let composeEnv: NodeJS.ProcessEnv;
  let skopeoEnv: NodeJS.ProcessEnv;
  let user = 'admin';
  let password = '';
  let hookServer: Server;
  const hooks: Hook['events'] = [];
  let nats: NatsConnection;
  const natsSeen: Array<{ subject: string; id: string }> = [];
  const pushed: Array<{ repo: string; tag: string; digest: string }> = [];

  const compose = (...args: string[]) => sh('docker-compose', ['-p', PROJECT, '-f', 'docker-compose.yml', '-f', override, ...args], { env: composeEnv, timeoutMs: 1_800_000 });
  const container = (service: string) => `${PROJECT}_${service}_1`;
  const creds = () => ({ user, password });

  async function token(scope: string): Promise<string> {
    return fetchToken(BASE, [scope], creds());
  }

  async function skopeo(...args: string[]): Promise<string> {
    return sh('skopeo', ['--insecure-policy', ...args], { env: skopeoEnv, timeoutMs: 300_000 });
  }

  async function pushImage(repo: string, tag: string, image: Image): Promise<void> {
    const dir = join(tmp, `layout-${repo.replace(/\W/g, '_')}-${tag}`);
    await writeOciLayout(dir, { [tag]: image });
    await skopeo('copy', '--dest-tls-verify=false', '--dest-creds', `${user}:${password}`, `oci:${dir}:${tag}`, `docker://127.0.0.1:5000/${repo}:${tag}`);
    pushed.push({ repo, tag, digest: image.descriptor.digest });
  }

  /** The registry answers through the balancer: 401 with a Bearer challenge naming its own realm. */
  async function waitServing(): Promise<void> {
    await eventually(
      async () => {
        const res = await fetch(`${BASE}/v2/`).catch(() => undefined);
        assert.equal(res?.status, 401, 'GET /v2/ through the balancer answers 401');
        return res;
      },
      WAIT_MS,
      1000,
    );
  }

  async function tagsOf(repo: string): Promise<string[]> {
    const res = await fetch(`${BASE}/v2/${repo}/tags/list`, { headers: { authorization: `Bearer ${await token(`repository:${repo}:pull`)}` } });
    assert.equal(res.status, 200);
    return ((await res.json()) as { tags: string[] }).tags;
  }

  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'wharf-compose-'));
    ({ env: skopeoEnv } = await skopeoSandbox('wharf-compose-skopeo-'));
    hookServer = createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        try {
          hooks.push(...(JSON.parse(body) as Hook).events);
        } catch {
          // not an envelope: counted as nothing
        }
        res.writeHead(200).end('ok');
      });
    });
    await new Promise<void>((r) => hookServer.listen(HOOK_PORT, '0.0.0.0', r));
    override = join(tmp, 'test-plumbing.yml');
    await writeFile(
      override,
      [
        'services:',
        '  nats:',
        `    ports: ["127.0.0.1:${NATS_PORT}:4222"]`,
        '  worker:',
        '    environment:',
        `      WHARF_NOTIFICATIONS_ENDPOINTS: '[{"name":"test","url":"http://host.containers.internal:${HOOK_PORT}/hook"}]'`,
        '',
      ].join('\n'),
    );
    api = await startDockerApi();
    composeEnv = { ...podmanEnv, DOCKER_HOST: api.dockerHost, COMPOSE_HTTP_TIMEOUT: '3600' };
    ticker = startHealthTicker();
    await compose('down', '--volumes', '--remove-orphans').catch(() => '');
  });

  after(async () => {
    await nats?.close().catch(() => {});
    if (process.env.WHARF_DEPLOY_KEEP !== '1') await compose('down', '--volumes', '--remove-orphans').catch((e) => console.error(String(e)));
    await ticker?.stop();
    await api?.close();
    await new Promise((r) => hookServer?.close(r));
    await rm(tmp, { recursive: true, force: true });
  });

  it('builds the stand-in images and the Wharf image once', async () => {
    let t = Date.now();
    await sh(join(ROOT, 'deploy/local-images.sh'), [], { timeoutMs: 3_000_000 });
    console.log(`timing: stand-in images ready in ${((Date.now() - t) / 1000).toFixed(0)} s`);
    t = Date.now();
    // The Dockerfile the compose file's `build: .` names, built by podman itself: through
    // podman's Docker API docker-compose 1.29 gets no output until a build ends, and gave up
    // on its HTTP read after COMPOSE_HTTP_TIMEOUT on this loaded machine. `up` then uses it.
    await sh('podman', WHARF_BUILD, { timeoutMs: 3_000_000 });
    console.log(`timing: the Wharf image (podman build of the Dockerfile) ${((Date.now() - t) / 1000).toFixed(0)} s`);
    const images = await podman('images', '--format', '{{.Repository}}:{{.Tag}}');
    assert.match(images, /localhost\/wharf:0\.1\.0|docker\.io\/library\/wharf:0\.1\.0/, 'one wharf:0.1.0 image');
    // The build stage compiled the native SHA-256 addon against Node 24's headers.
    const addon = await podman(
      'run',
      '--rm',
      '--entrypoint',
      'node',
      'wharf:0.1.0',
      '-e',
      "require('/app/libs/hashing/build/Release/wharf_sha256.node'); console.log(process.version)",
    );
    assert.match(addon, /^v24\./);
  });

  it('makes the auth keys once with `docker-compose run --rm keys`, and never again over them', async () => {
    const out = await compose('run', '--rm', 'keys');
    user = /user: (\S+)/.exec(out)?.[1] ?? '';
    password = /password: (\S+)/.exec(out)?.[1] ?? '';
    assert.equal(user, 'admin');
    assert.ok(password.length >= 20, 'a random password');
    await assert.rejects(compose('run', '--rm', 'keys'), /exists; remove it first/);
  });

  it('starts with `up -d` and serves through the balancer on loopback with token auth on', async () => {
    await compose('up', '-d');
    await waitServing();
    const res = await fetch(`${BASE}/v2/`);
    assert.equal(res.headers.get('www-authenticate'), 'Bearer realm="http://127.0.0.1:5000/auth/token",service="wharf"');
    const published = await podman('port', container('lb'));
    assert.match(published, /127\.0\.0\.1:5000/);
    assert.doesNotMatch(published, /0\.0\.0\.0/, 'the balancer is published on loopback only');
    const bad = await fetch(`${BASE}/auth/token?service=wharf&scope=repository:x:pull`, { headers: { authorization: basic('admin', 'wrong') } });
    assert.equal(bad.status, 401, 'a wrong password gets no token');
    nats = await connect({ servers: `nats://127.0.0.1:${NATS_PORT}`, maxReconnectAttempts: -1, reconnectTimeWait: 500 });
    const sub = nats.subscribe('wharf.events.>');
    void (async () => {
      for await (const m of sub) natsSeen.push({ subject: m.subject, id: (m.json() as { id: string }).id });
    })();
  });

  it('pushes a multi-layer image with skopeo, pulls it back, lists it; the worker delivers the webhook and NATS carries the event', async () => {
    const image = buildImage({ layers: 4 });
    await pushImage('team/app', 'v1', image);
    const pulled = join(tmp, 'pulled');
    await skopeo('copy', '--src-tls-verify=false', '--src-creds', `${user}:${password}`, 'docker://127.0.0.1:5000/team/app:v1', `oci:${pulled}:v1`);
    const inspect = JSON.parse(await skopeo('inspect', '--tls-verify=false', '--creds', `${user}:${password}`, '--raw', 'docker://127.0.0.1:5000/team/app:v1')) as {
      layers: unknown[];
    };
    assert.equal(inspect.layers.length, 4);
    await eventually(
      async () => {
        const res = await fetch(`${BASE}/v2/_catalog`, { headers: { authorization: `Bearer ${await token('registry:catalog:*')}` } });
        assert.equal(res.status, 200);
        assert.ok(((await res.json()) as { repositories: string[] }).repositories.includes('team/app'), 'catalog lists team/app');
      },
      WAIT_MS,
      500,
    );
    const hook = await eventually(
      () => {
        const h = hooks.find((e) => e.action === 'push' && e.target.repository === 'team/app' && e.target.tag === 'v1');
        assert.ok(h, 'webhook for the push of team/app:v1');
        return h;
      },
      WAIT_MS,
      500,
    );
    assert.equal(hook.target.digest, image.descriptor.digest);
    assert.ok(hook.target.url.startsWith('http://127.0.0.1:5000/v2/team/app/'), `event URL names the balancer: ${hook.target.url}`);
    await eventually(
      () =>
        assert.ok(
          natsSeen.some((m) => m.id === hook.id),
          'the NATS subscriber saw the same event',
        ),
      WAIT_MS,
      500,
    );
  });

  it('finishes a chunked upload through the balancer after one API container is killed in the middle of it', async () => {
    const repo = 'team/killed';
    const auth = { authorization: `Bearer ${await token(`repository:${repo}:pull,push`)}` };
    const chunk = 256 * 1024;
    const data = Buffer.alloc(chunk * 4);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7919) & 0xff;
    const { createHash } = await import('node:crypto');
    const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
    const start = await fetch(`${BASE}/v2/${repo}/blobs/uploads/`, { method: 'POST', headers: auth });
    assert.equal(start.status, 202);
    let location = new URL(start.headers.get('location')!, BASE).href;
    const offset = async () => {
      const res = await fetch(location, { headers: auth });
      assert.equal(res.status, 204, 'the session is there on whichever node answers');
      const range = res.headers.get('range');
      return range ? Number(range.split('-')[1]) + 1 : 0;
    };
    const send = async (from: number, to: number, mid?: () => Promise<void>) => {
      // The body streams in two halves; `mid` runs between them (the kill).
      const half = from + Math.floor((to - from) / 2);
      const body = new ReadableStream<Uint8Array>({
        async pull(controller) {
          if (!mid) {
            controller.enqueue(data.subarray(from, to));
            controller.close();
            return;
          }
          controller.enqueue(data.subarray(from, half));
          const m = mid;
          mid = undefined;
          await m();
          controller.enqueue(data.subarray(half, to));
          controller.close();
        },
      });
      const res = await fetch(location, {
        method: 'PATCH',
        headers: { ...auth, 'content-type': 'application/octet-stream', 'content-range': `${from}-${to - 1}`, 'content-length': String(to - from) },
        body,
        duplex: 'half',
      } as RequestInit).catch((err: Error) => err);
      if (res instanceof Error) return false;
      await res.arrayBuffer();
      if (res.status !== 202) return false;
      location = new URL(res.headers.get('location')!, BASE).href;
      return true;
    };
    assert.ok(await send(0, chunk), 'first chunk');
    let killed = false;
    let interrupted = false;
    let at = await offset();
    while (at < data.length) {
      const to = Math.min(at + chunk, data.length);
      const ok = await send(
        at,
        to,
        killed
          ? undefined
          : async () => {
              await podman('kill', container('api1'));
              killed = true;
            },
      );
      if (!ok) interrupted = true;
      at = await offset(); // resume where the session says, as a client does after an error
    }
    console.log(`kill: api1 killed mid-PATCH; ${interrupted ? 'that PATCH was cut and resumed from the session offset' : 'that PATCH was on api2 and went through'}`);
    const done = await fetch(`${location}${location.includes('?') ? '&' : '?'}digest=${digest}`, { method: 'PUT', headers: auth });
    assert.equal(done.status, 201, await done.text());
    const head = await fetch(`${BASE}/v2/${repo}/blobs/${digest}`, { method: 'HEAD', headers: auth });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), String(data.length));
    await compose('start', 'api1');
  });

  it('loses no event when the NATS container restarts during pushes', async () => {
    const images = Array.from({ length: 6 }, () => buildImage({ layers: 1 }));
    const pushes = (async () => {
      for (const [i, image] of images.entries()) await pushImage('team/restart', `r${i}`, image);
    })();
    await eventually(
      () =>
        assert.ok(
          pushed.some((p) => p.repo === 'team/restart'),
          'a first push landed',
        ),
      WAIT_MS,
      200,
    );
    await compose('restart', 'nats');
    await pushes;
    for (const [i, image] of images.entries()) {
      await eventually(
        () =>
          assert.ok(
            hooks.some((e) => e.action === 'push' && e.target.repository === 'team/restart' && e.target.tag === `r${i}` && e.target.digest === image.descriptor.digest),
            `webhook for r${i}`,
          ),
        WAIT_MS,
        500,
      );
    }
    // Every push is in the JetStream stream too (the relay published it once NATS was back). Read
    // on a connection of its own, asked until the restarted server's JetStream answers: the suite's
    // long-lived connection may still be reconnecting (its JetStream API request timed out here).
    // One filter subject as a string: NATS 2.9 (the pinned server) has no filter_subjects.
    const expected = images.map((_, i) => `r${i}`).sort();
    await eventually(
      async () => {
        const reader = await connect({ servers: `nats://127.0.0.1:${NATS_PORT}`, timeout: 10_000 });
        try {
          const jsm = await reader.jetstreamManager({ timeout: 10_000 });
          const stream = await jsm.streams.info('WHARF_EVENTS');
          const consumer = await reader.jetstream({ timeout: 10_000 }).consumers.get('WHARF_EVENTS', { filterSubjects: 'wharf.events.>' });
          const tags = new Set<string>();
          const messages = await consumer.fetch({ max_messages: stream.state.messages, expires: 10_000 });
          for await (const m of messages) {
            const e = m.json() as { action: string; target: { repository: string; tag?: string } };
            if (e.action === 'push' && e.target.repository === 'team/restart' && e.target.tag) tags.add(e.target.tag);
            if (tags.size === images.length) break;
          }
          assert.deepEqual([...tags].sort(), expected, 'every push event is in the stream');
        } finally {
          await reader.close();
        }
      },
      WAIT_MS,
      1000,
    );
  });

  it('keeps every tag across `down` and `up`', async () => {
    await nats.close();
    await compose('down');
    await compose('up', '-d');
    await waitServing();
    // Once seen: a replica answered a tag list with 503 UNAVAILABLE right after the balancer first
    // answered (a dependency not yet reachable from it). Wait until the registry serves reads
    // through the balancer, then check every tag.
    await eventually(() => tagsOf(pushed[0]!.repo), WAIT_MS, 1000);
    for (const p of pushed) {
      assert.ok((await tagsOf(p.repo)).includes(p.tag), `${p.repo}:${p.tag} after down/up`);
      const res = await fetch(`${BASE}/v2/${p.repo}/manifests/${p.tag}`, {
        method: 'HEAD',
        headers: { authorization: `Bearer ${await token(`repository:${p.repo}:pull`)}`, accept: 'application/vnd.oci.image.manifest.v1+json' },
      });
      assert.equal(res.headers.get('docker-content-digest'), p.digest);
    }
  });
});
