/**
 * libs/remote against real registries: CNCF Distribution 2.8.2 (open, and with htpasswd Basic
 * auth) and a Wharf with token auth on (the Docker token flow through its built-in issuer).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { type RemoteError, RemoteRegistry } from '../libs/remote/index.js';
import { basic, makeAuthFixture, startCredentialProxy, type AuthFixture } from './helpers/auth.js';
import { startCountingProxy, type CountingProxy } from './helpers/counting-proxy.js';
import { DISTRIBUTION, startDistribution, type Distribution } from './helpers/distribution.js';
import { randomBlob } from './helpers/oci.js';
import { pushContent, rawImage } from './helpers/upstream-push.js';
import { freePort } from './helpers/processes.js';
import { startRoundRobin } from './helpers/round-robin.js';
import { startTestWharf, type TestWharf } from './helpers/server.js';

const skip = existsSync(DISTRIBUTION) ? false : `${DISTRIBUTION} not installed`;

async function sha256Of(stream: AsyncIterable<unknown>): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of stream) hash.update(chunk as Buffer);
  return `sha256:${hash.digest('hex')}`;
}

function listen(handler: (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => void): Promise<{ url: string; server: Server }> {
  const server = createServer(handler);
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, server })));
}

describe('remote client against Distribution 2.8.2', { skip }, () => {
  let registry: Distribution;
  let image: ReturnType<typeof rawImage>;

  before(async () => {
    registry = await startDistribution();
    image = rawImage([randomBlob(1000), randomBlob(300_000)]);
    await pushContent(registry.url, 'team/app', image, 'v1');
  });
  after(() => registry?.close());

  it('reads a manifest by tag and by digest, HEADs it, and streams its blobs', async () => {
    const remote = new RemoteRegistry({ name: 'dist', urls: [registry.url] });
    const byTag = await remote.manifest('team/app', 'v1', 'GET');
    assert.equal(byTag?.digest, image.digest);
    assert.equal(byTag?.payload?.toString(), image.bytes.toString());
    assert.equal(byTag?.mediaType, 'application/vnd.oci.image.manifest.v1+json');
    const head = await remote.manifest('team/app', 'v1', 'HEAD');
    assert.equal(head?.digest, image.digest);
    assert.equal(head?.payload, undefined);
    const byDigest = await remote.manifest('team/app', image.digest, 'GET');
    assert.equal(byDigest?.size, image.size);
    const layer = image.layers[1]!;
    const blob = await remote.blob('team/app', layer.digest);
    assert.equal(blob?.size, layer.size);
    assert.equal(await sha256Of(blob!.body), layer.digest);
  });

  it('says undefined for what the upstream does not have', async () => {
    const remote = new RemoteRegistry({ name: 'dist', urls: [registry.url] });
    assert.equal(await remote.manifest('team/app', 'nope', 'GET'), undefined);
    assert.equal(await remote.manifest('team/none', 'v1', 'HEAD'), undefined);
    assert.equal(await remote.blob('team/app', `sha256:${'0'.repeat(64)}`), undefined);
    // Distribution 2.8.2 has no referrers API: the caller falls back to the tag schema.
    assert.equal(await remote.referrers('team/app', image.digest), undefined);
  });

  it('fails over to a mirror when the primary is unreachable, answers 503, or stalls', async () => {
    const dead = `http://127.0.0.1:${await freePort()}`;
    const failing = await listen((_req, res) => res.writeHead(503).end());
    const stalled = await listen(() => {}); // accepts, never answers
    try {
      for (const primary of [dead, failing.url, stalled.url]) {
        const failures: string[] = [];
        const remote = new RemoteRegistry({ name: 'dist', urls: [primary, registry.url], timeoutMs: 500, retries: 1, onAttemptFailed: (f) => failures.push(f.error) });
        const m = await remote.manifest('team/app', 'v1', 'GET');
        assert.equal(m?.digest, image.digest, primary);
        assert.equal(failures.length, 2, `${primary}: ${failures.join('; ')}`);
      }
      const remote = new RemoteRegistry({ name: 'dist', urls: [dead, failing.url], retries: 0 });
      await assert.rejects(remote.manifest('team/app', 'v1', 'GET'), (err: RemoteError) => err.failure === 'unavailable' && err.status === 503);
    } finally {
      failing.server.close();
      stalled.server.closeAllConnections();
      stalled.server.close();
    }
  });

  it('refuses credentials in the URL', () => {
    assert.throws(() => new RemoteRegistry({ name: 'x', urls: ['http://u:p@127.0.0.1:1'] }), /credentials do not go in the URL/);
  });
});

describe('remote client against Distribution with htpasswd (Basic)', { skip }, () => {
  let registry: Distribution;
  let image: ReturnType<typeof rawImage>;

  before(async () => {
    registry = await startDistribution({ users: { puller: 'pull-secret' } });
    const pusher = await startRoundRobin([registry.url], { addHeaders: () => ({ authorization: basic('puller', 'pull-secret') }) });
    try {
      image = rawImage([randomBlob(1000)]);
      await pushContent(pusher.url, 'lib/tool', image, 'latest');
    } finally {
      await pusher.close();
    }
  });
  after(() => registry?.close());

  it('answers the Basic challenge with the configured credentials', async () => {
    const remote = new RemoteRegistry({ name: 'dist', urls: [registry.url], credentials: { username: 'puller', password: 'pull-secret' } });
    assert.equal((await remote.manifest('lib/tool', 'latest', 'GET'))?.digest, image.digest);
    const blob = await remote.blob('lib/tool', image.layers[0]!.digest);
    assert.equal(await sha256Of(blob!.body), image.layers[0]!.digest);
  });

  it('is unauthorized without credentials or with wrong ones, and never says the password', async () => {
    const none = new RemoteRegistry({ name: 'dist', urls: [registry.url] });
    await assert.rejects(none.manifest('lib/tool', 'latest', 'GET'), (err: RemoteError) => err.failure === 'unauthorized');
    const wrong = new RemoteRegistry({ name: 'dist', urls: [registry.url], credentials: { username: 'puller', password: 'not-it-s3cr3t' } });
    await assert.rejects(wrong.manifest('lib/tool', 'latest', 'GET'), (err: RemoteError) => err.failure === 'unauthorized' && !err.message.includes('not-it-s3cr3t'));
  });
});

describe('remote client against Wharf with token auth (Docker token flow)', () => {
  let fx: AuthFixture;
  let wharf: TestWharf;
  let counting: CountingProxy;
  let image: ReturnType<typeof rawImage>;

  before(async () => {
    fx = await makeAuthFixture({ mirror: 'mirror-secret' });
    wharf = await startTestWharf({ 'auth.mode': 'token', 'auth.htpasswd.path': fx.htpasswdPath, 'auth.token.signingkey': fx.signingKeyPath, 'auth.token.expiry': 60 });
    const pusher = await startCredentialProxy(wharf.url, '', 'bearer', { user: 'mirror', password: 'mirror-secret' });
    try {
      image = rawImage([randomBlob(1000), randomBlob(2000)]);
      await pushContent(pusher.url, 'org/svc', image, 'v2');
    } finally {
      await pusher.close();
    }
    counting = await startCountingProxy(wharf.url);
  });
  after(async () => {
    await counting?.close();
    await wharf?.close();
    await fx?.close();
  });

  it('gets a token for the repository scope, then reuses it until it expires', async () => {
    const remote = new RemoteRegistry({ name: 'wharf', urls: [counting.url], credentials: { username: 'mirror', password: 'mirror-secret' } });
    assert.equal((await remote.manifest('org/svc', 'v2', 'GET'))?.digest, image.digest);
    assert.equal(counting.count('/auth/token'), 1);
    assert.match(counting.requests.find((r) => r.includes('/auth/token'))!, /scope=repository%3Aorg%2Fsvc%3Apull/);
    for (const layer of image.layers) assert.equal(await sha256Of((await remote.blob('org/svc', layer.digest))!.body), layer.digest);
    assert.equal((await remote.manifest('org/svc', image.digest, 'HEAD'))?.digest, image.digest);
    assert.equal(counting.count('/auth/token'), 1, counting.requests.join('\n'));
    // One 401 taught the client the challenge: later requests carry the token up front.
    assert.equal(counting.count('/v2/org/svc/'), 4 + 1);
  });

  it('is unauthorized with a wrong password', async () => {
    const remote = new RemoteRegistry({ name: 'wharf', urls: [wharf.url], credentials: { username: 'mirror', password: 'wrong-password' } });
    await assert.rejects(remote.manifest('org/svc', 'v2', 'GET'), (err: RemoteError) => err.failure === 'unauthorized' && !err.message.includes('wrong-password'));
  });
});
