/**
 * What the API adds for the browser UI, over plain HTTP: the static files at <prefix>/ui (types,
 * ETags, gzip, CSP, nothing outside the build), ui.enabled, the admin status and redrive
 * endpoints, and the built-in issuer's refresh tokens (what the UI keeps instead of a password).
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import bcrypt from 'bcryptjs';
import { ConfigError, loadConfig } from '../libs/config/index.js';
import { makeAuthFixture, type AuthFixture } from './helpers/auth.js';
import { pushImage } from './helpers/oci.js';
import { startTestWharf, type TestWharf } from './helpers/server.js';
import { eventually } from './helpers/wait.js';

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
const claims = (jwt: string) => JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString()) as { sub?: string; aud?: string; access?: unknown[]; exp: number };

describe('the UI files under http.prefix', () => {
  let wharf: TestWharf;
  before(async () => {
    wharf = await startTestWharf({ 'http.prefix': '/reg' });
  });
  after(async () => wharf?.close());

  it('redirects /ui to /ui/ and serves index.html with a self-only CSP and the auth mode', async () => {
    const bare = await fetch(`${wharf.url}/reg/ui`, { redirect: 'manual' });
    assert.equal(bare.status, 301);
    assert.equal(bare.headers.get('location'), '/reg/ui/');
    const res = await fetch(`${wharf.url}/reg/ui/`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'text/html; charset=utf-8');
    const csp = res.headers.get('content-security-policy') ?? '';
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'self'(;|$)/);
    assert.match(csp, /connect-src 'self'(;|$)/);
    assert.doesNotMatch(csp, /https?:|\*|unsafe/, 'no remote source, no wildcard, no unsafe-inline');
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(res.headers.get('cache-control'), 'no-cache');
    const html = await res.text();
    assert.match(html, /<script id="wharf-config" type="application\/json">\{"auth":"none"\}<\/script>/);
    assert.doesNotMatch(html, /<script>|https?:\/\//, 'no inline script, no remote URL');
    assert.equal((await fetch(`${wharf.url}/ui/`)).status, 404, 'nothing outside the prefix');
  });

  it('serves the bundle with its content type, an ETag that answers 304, and gzip when asked', async () => {
    const js = await fetch(`${wharf.url}/reg/ui/app.js`, { headers: { 'accept-encoding': 'identity' } });
    assert.equal(js.status, 200);
    assert.equal(js.headers.get('content-type'), 'text/javascript; charset=utf-8');
    const etag = js.headers.get('etag')!;
    assert.match(etag, /^"[A-Za-z0-9_-]{22}"$/);
    const plain = Buffer.from(await js.arrayBuffer());
    assert.doesNotMatch(plain.toString('utf8'), /https?:\/\/(?!github\.com\/opencontainers)/, 'the bundle names no remote host');
    const again = await fetch(`${wharf.url}/reg/ui/app.js`, { headers: { 'if-none-match': etag } });
    assert.equal(again.status, 304);
    assert.equal((await again.arrayBuffer()).byteLength, 0);
    // fetch() would decompress on its own: ask for gzip by hand and compare the bytes.
    const { request } = await import('node:http');
    const gz = await new Promise<{ status: number; encoding: string | undefined; body: Buffer }>((resolve, reject) => {
      request(`${wharf.url}/reg/ui/app.js`, { headers: { 'accept-encoding': 'gzip' } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode!, encoding: res.headers['content-encoding'], body: Buffer.concat(chunks) }));
      })
        .on('error', reject)
        .end();
    });
    assert.equal(gz.status, 200);
    assert.equal(gz.encoding, 'gzip');
    assert.deepEqual(gunzipSync(gz.body), plain);
    const css = await fetch(`${wharf.url}/reg/ui/app.css`);
    assert.equal(css.headers.get('content-type'), 'text/css; charset=utf-8');
  });

  it('serves only the files of the build: traversal and unknown names are 404', async () => {
    for (const path of ['/reg/ui/package.json', '/reg/ui/..%2Fpackage.json', '/reg/ui/%2e%2e/%2e%2e/package.json', '/reg/ui/nope.js', '/reg/ui/app.js/x']) {
      const res = await fetch(`${wharf.url}${path}`);
      assert.equal(res.status, 404, path);
      assert.doesNotMatch(await res.text(), /"name": ?"wharf"/, path);
    }
  });
});

describe('ui.enabled', () => {
  it('is a boolean, and false leaves /ui unserved', async () => {
    assert.throws(() => loadConfig({ env: { WHARF_UI_ENABLED: 'maybe' } }), ConfigError);
    const wharf = await startTestWharf({ 'ui.enabled': false });
    try {
      assert.equal((await fetch(`${wharf.base}/ui/`)).status, 404);
      assert.equal((await fetch(`${wharf.base}/v2/`)).status, 200);
    } finally {
      await wharf.close();
    }
  });
});

describe('admin status and webhook redrive', () => {
  let wharf: TestWharf;
  before(async () => {
    wharf = await startTestWharf({ 'notifications.endpoints': [{ name: 'gone', url: 'http://127.0.0.1:9/none', backoff: '10ms', maxbackoff: '20ms', maxattempts: 1 }] });
  });
  after(async () => wharf?.close());

  it('reports the gc queues, the outbox and how far the catalog is behind', async () => {
    await pushImage(wharf.base, 'ops/app', 'v1');
    await fetch(`${wharf.base}/v2/ops/app/manifests/v1`, { method: 'DELETE' });
    const status = await eventually(async () => {
      const res = await fetch(`${wharf.base}/_wharf/admin/status`);
      assert.equal(res.status, 200);
      const body = (await res.json()) as {
        gc: { manifestReviews: { queued: number; due: number; oldestDue: string | null }; blobReviews: { queued: number }; storageDeletions: { queued: number; bytes: number } };
        outbox: { unpublished: number; oldestUnpublished: string | null };
        readModels: { catalog: { repositoriesBehind: number } };
        consumers: Array<{ durable: string; pending: number; ackPending: number }>;
      };
      // The untagged manifest is due for review after gc.grace: queued, not yet due.
      assert.ok(body.gc.manifestReviews.queued >= 1, JSON.stringify(body.gc));
      assert.equal(body.readModels.catalog.repositoriesBehind, 0, 'the catalog caught up');
      return body;
    }, 60_000);
    assert.equal(typeof status.outbox.unpublished, 'number');
    assert.ok(
      status.consumers.some((c) => c.durable === 'catalog-indexer-push'),
      'wharf all runs the consumers in this process',
    );
  });

  it('redrives dead letters over HTTP, refusing anything but a small JSON filter', async () => {
    await eventually(async () => {
      const res = (await (await fetch(`${wharf.base}/_wharf/admin/webhooks`)).json()) as { endpoints: Array<{ name: string; deadLettered: number }> };
      assert.ok(res.endpoints.find((e) => e.name === 'gone')!.deadLettered >= 1);
    }, 60_000);
    const post = (body: string, type = 'application/json') => fetch(`${wharf.base}/_wharf/admin/webhooks/redrive`, { method: 'POST', headers: { 'content-type': type }, body });
    assert.equal((await post('endpoint=gone', 'application/x-www-form-urlencoded')).status, 415, 'a form (what a cross-site page can send) is refused');
    for (const bad of ['{', '[]', '{"endpoint":5}', '{"eventId":"nope"}', '{"other":1}']) {
      const res = await post(bad);
      assert.equal(res.status, 400, bad);
      assert.equal(((await res.json()) as { errors: Array<{ code: string }> }).errors[0]!.code, 'UNSUPPORTED');
    }
    assert.equal((await post(JSON.stringify({ endpoint: 'x'.repeat(5000) }))).status, 413);
    assert.deepEqual(await (await post('{"endpoint":"nobody"}')).json(), { redriven: 0 });
    const moved = (await (await post('{"endpoint":"gone"}')).json()) as { redriven: number };
    assert.ok(moved.redriven >= 1);
  });
});

describe('refresh tokens of the built-in issuer, and admin access', () => {
  let fx: AuthFixture;
  let wharf: TestWharf;
  const PASSWORDS = { alice: 'alice-pw-1', ops: 'ops-pw-1' };
  before(async () => {
    fx = await makeAuthFixture(PASSWORDS);
    wharf = await startTestWharf({
      'auth.mode': 'token',
      'auth.htpasswd.path': fx.htpasswdPath,
      'auth.token.signingkey': fx.signingKeyPath,
      'auth.token.refreshexpiry': 600,
      'auth.policy': [
        { users: ['alice'], repositories: ['team/**'], actions: ['pull'], catalog: true },
        { users: ['ops'], admin: true },
      ],
    });
  });
  after(async () => {
    await wharf?.close();
    await fx?.close();
  });

  const token = (query: string, authorization?: string) => fetch(`${wharf.base}/auth/token?service=wharf&${query}`, authorization ? { headers: { authorization } } : {});
  const refresh = (form: Record<string, string>) => fetch(`${wharf.base}/auth/token`, { method: 'POST', body: new URLSearchParams(form) });

  it('tells the UI the auth mode and where the token service is', async () => {
    const html = await (await fetch(`${wharf.base}/ui/`)).text();
    assert.match(html, /\{"auth":"token","service":"wharf","tokenPath":"\/auth\/token"\}/);
  });

  it('issues a refresh token with offline_token=true, for signed-in users only, that no registry endpoint accepts', async () => {
    const res = await token('offline_token=true&scope=registry:catalog:*', basic('alice', PASSWORDS.alice));
    const body = (await res.json()) as { token: string; refresh_token: string };
    assert.equal(claims(body.refresh_token).sub, 'alice');
    assert.equal(claims(body.refresh_token).access, undefined, 'a refresh token grants nothing itself');
    assert.ok(claims(body.refresh_token).exp - Date.now() / 1000 > 500);
    for (const path of ['/v2/', '/v2/_catalog']) {
      const used = await fetch(`${wharf.base}${path}`, { headers: { authorization: `Bearer ${body.refresh_token}` } });
      assert.equal(used.status, 401, `${path} refuses a refresh token as a bearer token`);
    }
    const anonymous = (await (await token('offline_token=true')).json()) as Record<string, unknown>;
    assert.equal(anonymous.refresh_token, undefined);
    const without = (await (await token('scope=registry:catalog:*', basic('alice', PASSWORDS.alice))).json()) as Record<string, unknown>;
    assert.equal(without.refresh_token, undefined, 'only when asked for');
  });

  it('exchanges a refresh token for access tokens the policy allows, and refuses bad ones with invalid_grant', async () => {
    const { refresh_token } = (await (await token('offline_token=true', basic('alice', PASSWORDS.alice))).json()) as { refresh_token: string };
    const res = await refresh({ grant_type: 'refresh_token', refresh_token, service: 'wharf', scope: 'repository:team/app:pull,delete registry:admin:*' });
    assert.equal(res.status, 200);
    const access = (await res.json()) as { access_token: string };
    assert.equal(claims(access.access_token).sub, 'alice');
    assert.deepEqual(claims(access.access_token).access, [{ type: 'repository', name: 'team/app', actions: ['pull'] }], 'only what the policy grants');
    assert.equal((await fetch(`${wharf.base}/_wharf/admin/status`, { headers: { authorization: `Bearer ${access.access_token}` } })).status, 403, 'alice is no admin');

    const { access_token: plain } = (await (await token('scope=registry:catalog:*', basic('alice', PASSWORDS.alice))).json()) as { access_token: string };
    const tampered = `${refresh_token.slice(0, -4)}AAAA`;
    for (const [what, value] of [
      ['an access token', plain],
      ['a tampered token', tampered],
      ['garbage', 'x.y.z'],
    ] as const) {
      const bad = await refresh({ grant_type: 'refresh_token', refresh_token: value, service: 'wharf' });
      assert.equal(bad.status, 400, what);
      assert.equal(((await bad.json()) as { error: string }).error, 'invalid_grant', what);
    }
    const missing = await refresh({ grant_type: 'refresh_token', service: 'wharf' });
    assert.equal(((await missing.json()) as { error: string }).error, 'invalid_request');
    assert.equal((await refresh({ grant_type: 'refresh_token', refresh_token, service: 'elsewhere' })).status, 403);
  });

  it('lets an admin read the status and redrive; a refresh token stops working when its user leaves htpasswd', async () => {
    const { refresh_token } = (await (await token('offline_token=true', basic('ops', PASSWORDS.ops))).json()) as { refresh_token: string };
    const res = await refresh({ grant_type: 'refresh_token', refresh_token, service: 'wharf', scope: 'registry:admin:*' });
    const { access_token } = (await res.json()) as { access_token: string };
    const authz = { authorization: `Bearer ${access_token}` };
    assert.equal((await fetch(`${wharf.base}/_wharf/admin/status`, { headers: authz })).status, 200);
    const redrive = await fetch(`${wharf.base}/_wharf/admin/webhooks/redrive`, { method: 'POST', headers: { ...authz, 'content-type': 'application/json' }, body: '{}' });
    assert.deepEqual(await redrive.json(), { redriven: 0 });
    assert.equal((await fetch(`${wharf.base}/_wharf/admin/webhooks/redrive`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).status, 401);

    const file = await readFile(fx.htpasswdPath, 'utf8');
    await writeFile(
      fx.htpasswdPath,
      `${file
        .split('\n')
        .filter((l) => !l.startsWith('ops:'))
        .join('\n')}\ncarol:${bcrypt.hashSync('c', 5)}\n`,
    );
    // The file is re-read within two seconds of a change.
    await eventually(
      async () => {
        const gone = await refresh({ grant_type: 'refresh_token', refresh_token, service: 'wharf', scope: 'registry:admin:*' });
        assert.equal(gone.status, 400);
      },
      30_000,
      100,
    );
  });
});
