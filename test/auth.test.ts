/**
 * Access control: htpasswd (Basic) and token (Bearer) modes, the built-in token issuer, and the
 * rules every endpoint follows. Keys, certificates and the htpasswd file are made at test time.
 */
import assert from 'node:assert/strict';
import { createHmac, createPublicKey, generateKeyPairSync, randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Htpasswd, Policy, TokenError, TokenVerifier, buildTrustStore, parseHtpasswd, type PolicyRule, type TokenClaims } from '../libs/auth/index.js';
import { loadConfig, type Config } from '../libs/config/index.js';
import { authFromConfig } from '../services/cli/wiring.js';
import { createLogger } from '../libs/log/index.js';
import type { RegistryEvent } from '../libs/events/index.js';
import { basic, claims, fetchToken, jwkThumbprint, makeAuthFixture, mint, signToken, signWith, type AuthFixture } from './helpers/auth.js';
import { errorCode, pushBlob, pushImage, randomBlob } from './helpers/oci.js';
import { startTestWharf, type TestWharf } from './helpers/server.js';
import { eventually } from './helpers/wait.js';

const PASSWORDS = { alice: 'alice-pw-1', bob: 'bob-pw-2', root: 'root-pw-3' };
const DIGEST = `sha256:${'a'.repeat(64)}`;
const UUID = randomUUID();

const POLICY = [
  { users: ['alice'], repositories: ['a/**', '${user}/**'], actions: ['*'] },
  { groups: ['readers'], repositories: ['shared/**'], actions: ['pull'] },
  { users: ['bob'], repositories: ['a/**'], actions: ['pull'] },
  { anonymous: true, repositories: ['public/**'], actions: ['pull'] },
  { users: ['root'], admin: true },
];
const GROUPS = [{ name: 'readers', users: ['alice'] }];

/** Runs `fn` with every fetch carrying `authorization` (the OCI helpers call fetch themselves). */
async function as<T>(authorization: string, fn: () => Promise<T>): Promise<T> {
  const original = globalThis.fetch;
  globalThis.fetch = (input, init = {}) => original(input, { ...init, headers: { ...(init.headers as Record<string, string> | undefined), authorization } });
  try {
    return await fn();
  } finally {
    globalThis.fetch = original;
  }
}

/** Every endpoint, and the scope its challenge must name. */
const ENDPOINTS: Array<{ method: string; path: string; scope: string | undefined }> = [
  { method: 'GET', path: '/v2/', scope: undefined },
  { method: 'GET', path: '/v2/_catalog', scope: 'registry:catalog:*' },
  { method: 'GET', path: '/v2/a/app/tags/list', scope: 'repository:a/app:pull' },
  { method: 'GET', path: '/v2/a/app/manifests/v1', scope: 'repository:a/app:pull' },
  { method: 'HEAD', path: '/v2/a/app/manifests/v1', scope: 'repository:a/app:pull' },
  { method: 'PUT', path: '/v2/a/app/manifests/v1', scope: 'repository:a/app:pull,push' },
  { method: 'DELETE', path: `/v2/a/app/manifests/${DIGEST}`, scope: 'repository:a/app:delete' },
  { method: 'GET', path: `/v2/a/app/blobs/${DIGEST}`, scope: 'repository:a/app:pull' },
  { method: 'HEAD', path: `/v2/a/app/blobs/${DIGEST}`, scope: 'repository:a/app:pull' },
  { method: 'DELETE', path: `/v2/a/app/blobs/${DIGEST}`, scope: 'repository:a/app:delete' },
  { method: 'POST', path: '/v2/a/app/blobs/uploads/', scope: 'repository:a/app:pull,push' },
  { method: 'POST', path: `/v2/a/app/blobs/uploads/?digest=${DIGEST}`, scope: 'repository:a/app:pull,push' },
  { method: 'POST', path: `/v2/a/app/blobs/uploads/?mount=${DIGEST}&from=b/lib`, scope: 'repository:a/app:pull,push repository:b/lib:pull' },
  { method: 'GET', path: `/v2/a/app/blobs/uploads/${UUID}`, scope: 'repository:a/app:pull,push' },
  { method: 'PATCH', path: `/v2/a/app/blobs/uploads/${UUID}`, scope: 'repository:a/app:pull,push' },
  { method: 'PUT', path: `/v2/a/app/blobs/uploads/${UUID}?digest=${DIGEST}`, scope: 'repository:a/app:pull,push' },
  { method: 'DELETE', path: `/v2/a/app/blobs/uploads/${UUID}`, scope: 'repository:a/app:pull,push' },
  { method: 'GET', path: `/v2/a/app/referrers/${DIGEST}`, scope: 'repository:a/app:pull' },
  { method: 'GET', path: '/v2/a/app/_wharf/manifests', scope: 'repository:a/app:pull' },
  { method: 'GET', path: '/v2/a/app/_wharf/tags', scope: 'repository:a/app:pull' },
  { method: 'GET', path: '/v2/_wharf/repositories', scope: 'registry:catalog:*' },
  { method: 'GET', path: '/v2/team/_wharf/repositories', scope: 'registry:catalog:*' },
  { method: 'GET', path: '/_wharf/admin/gc', scope: 'registry:admin:*' },
  { method: 'GET', path: '/v2/_wharf/admin/gc', scope: 'registry:admin:*' },
  { method: 'GET', path: '/v2/no/such/endpoint', scope: undefined },
];

const hasBody = (method: string) => method === 'PUT' || method === 'PATCH' || method === 'POST';

describe('token mode with the built-in issuer', () => {
  let fx: AuthFixture;
  let wharf: TestWharf;
  let base: string;
  const alice = { user: 'alice', password: PASSWORDS.alice };
  const root = { user: 'root', password: PASSWORDS.root };
  const bearer = (t: string) => `Bearer ${t}`;

  before(async () => {
    fx = await makeAuthFixture(PASSWORDS);
    wharf = await startTestWharf({
      'auth.mode': 'token',
      'auth.htpasswd.path': fx.htpasswdPath,
      'auth.token.signingkey': fx.signingKeyPath,
      'auth.token.rootcertbundle': fx.caCertPath,
      'auth.token.jwks': fx.jwksPath,
      'auth.policy': POLICY,
      'auth.groups': GROUPS,
    });
    base = wharf.base;
  });
  after(async () => {
    await wharf?.close();
    await fx?.close();
  });

  it('answers every endpoint without credentials with 401 and a challenge naming its scope; nothing is written', async () => {
    const realm = `${base}/auth/token`;
    for (const { method, path, scope } of ENDPOINTS) {
      const res = await fetch(`${base}${path}`, { method, ...(hasBody(method) ? { body: 'x'.repeat(100) } : {}) });
      assert.equal(res.status, 401, `${method} ${path}`);
      let expected = `Bearer realm="${realm}",service="wharf"`;
      if (scope) expected += `,scope="${scope}"`;
      assert.equal(res.headers.get('www-authenticate'), expected, `${method} ${path}`);
      if (method !== 'HEAD') assert.equal(await errorCode(res), 'UNAUTHORIZED', `${method} ${path}`);
    }
    const catalog = await as(bearer(await fetchToken(base, ['registry:catalog:*'], root)), () => fetch(`${base}/v2/_catalog`));
    assert.deepEqual(await catalog.json(), { repositories: [] });
  });

  it('checks a path however it is spelt: percent-encoded prefixes and segments need the same grant', async () => {
    for (const [path, scope] of [
      ['/v%32/a/app/tags/list', 'repository:a/app:pull'],
      ['/%762/_catalog', 'registry:catalog:*'],
      ['/v2/%5Fcatalog', 'registry:catalog:*'],
      ['/v2/a%2Fapp/tags/list', 'repository:a/app:pull'],
      ['/v2/a/app/tags%2Flist', 'repository:a/app:pull'],
      ['/%5Fwharf/%61dmin/gc', 'registry:admin:*'],
    ] as const) {
      const res = await fetch(`${base}${path}`);
      assert.equal(res.status, 401, path);
      assert.match(res.headers.get('www-authenticate')!, new RegExp(`scope="${scope.replace(/[*]/g, '\\*')}"`), path);
    }
  });

  it('lets a token for repository A push and pull A', async () => {
    const token = await fetchToken(base, ['repository:a/app:pull,push'], alice);
    const image = await as(bearer(token), () => pushImage(base, 'a/app', 'v1'));
    const res = await as(bearer(token), () => fetch(`${base}/v2/a/app/manifests/v1`));
    assert.equal(res.status, 200);
    assert.equal(await res.text(), image.body);
    const blob = await as(bearer(token), () => fetch(`${base}/v2/a/app/blobs/${image.layers[0]!.digest}`));
    assert.equal(blob.status, 200);
  });

  it('refuses that token elsewhere: 401 insufficient_scope where the user could get a token, 403 DENIED where the policy never allows', async () => {
    const rootToken = await fetchToken(base, ['repository:b/lib:pull,push', 'repository:shared/lib:pull,push'], root);
    await as(bearer(rootToken), () => pushImage(base, 'b/lib', 'v1'));
    await as(bearer(rootToken), () => pushImage(base, 'shared/lib', 'v1'));
    const token = await fetchToken(base, ['repository:a/app:pull,push'], alice);

    const shared = await as(bearer(token), () => fetch(`${base}/v2/shared/lib/manifests/v1`));
    assert.equal(shared.status, 401);
    assert.match(shared.headers.get('www-authenticate')!, /scope="repository:shared\/lib:pull",error="insufficient_scope"$/);

    const other = await as(bearer(token), () => fetch(`${base}/v2/b/lib/manifests/v1`));
    assert.equal(other.status, 403);
    assert.equal(await errorCode(other), 'DENIED');

    const push = await as(bearer(token), () => fetch(`${base}/v2/b/lib/blobs/uploads/`, { method: 'POST' }));
    assert.equal(push.status, 403);

    const catalog = await as(bearer(token), () => fetch(`${base}/v2/_catalog`));
    assert.equal(catalog.status, 403);
    assert.equal(await errorCode(catalog), 'DENIED');
  });

  it('falls back to an upload session when mounting from a repository the token cannot read, whether or not the blob is there', async () => {
    const rootToken = await fetchToken(base, ['repository:b/lib:pull,push', 'repository:shared/lib:pull,push'], root);
    const blob = randomBlob(2048);
    await as(bearer(rootToken), () => pushBlob(base, 'b/lib', blob));
    await as(bearer(rootToken), () => pushBlob(base, 'shared/lib', blob));
    const token = await fetchToken(base, ['repository:a/app:pull,push'], alice);
    const mount = (from: string | undefined, digest: string, t = token) =>
      as(bearer(t), () => fetch(`${base}/v2/a/app/blobs/uploads/?mount=${digest}${from ? `&from=${from}` : ''}`, { method: 'POST' }));

    const there = await mount('b/lib', blob.digest);
    const absent = await mount('b/lib', randomBlob(10).digest);
    const guessed = await mount(undefined, blob.digest);
    for (const res of [there, absent, guessed]) {
      assert.equal(res.status, 202);
      assert.match(res.headers.get('location')!, /^\/v2\/a\/app\/blobs\/uploads\/[0-9a-f-]{36}$/);
      assert.equal(res.headers.get('docker-content-digest'), null);
    }
    assert.equal((await as(bearer(token), () => fetch(`${base}/v2/a/app/blobs/${blob.digest}`))).status, 404);

    // With pull on the source, the same mount links the blob.
    const both = await fetchToken(base, ['repository:a/app:pull,push', 'repository:shared/lib:pull'], alice);
    const mounted = await mount('shared/lib', blob.digest, both);
    assert.equal(mounted.status, 201);
    assert.equal((await as(bearer(token), () => fetch(`${base}/v2/a/app/blobs/${blob.digest}`))).status, 200);
  });

  it('issues the intersection of the request and the policy, and says so in the token', async () => {
    const res = await fetch(
      `${base}/auth/token?service=wharf&scope=repository:a/app:pull,push,delete&scope=repository:b/lib:pull,push&scope=registry:catalog:*&offline_token=true`,
      {
        headers: { authorization: basic('alice', PASSWORDS.alice) },
      },
    );
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('cache-control'), 'no-store');
    const body = (await res.json()) as { token: string; access_token: string; expires_in: number; issued_at: string };
    assert.equal(body.token, body.access_token);
    assert.equal(body.expires_in, 300);
    assert.ok(Math.abs(Date.parse(body.issued_at) - Date.now()) < 120_000);
    const payload = JSON.parse(Buffer.from(body.token.split('.')[1]!, 'base64url').toString()) as TokenClaims;
    assert.equal(payload.sub, 'alice');
    assert.equal(payload.aud, 'wharf');
    assert.deepEqual(payload.access, [{ type: 'repository', name: 'a/app', actions: ['pull', 'push', 'delete'] }]);

    const own = await fetchToken(base, ['repository:alice/tools:push'], alice);
    assert.deepEqual((JSON.parse(Buffer.from(own.split('.')[1]!, 'base64url').toString()) as TokenClaims).access, [{ type: 'repository', name: 'alice/tools', actions: ['push'] }]);
  });

  it('gives anonymous clients a token with what anonymous requests may do, and refuses bad credentials the same way whoever is named', async () => {
    const anonymous = await fetchToken(base, ['repository:public/x:pull,push', 'repository:a/app:pull']);
    const payload = JSON.parse(Buffer.from(anonymous.split('.')[1]!, 'base64url').toString()) as TokenClaims;
    assert.equal(payload.sub, undefined);
    assert.deepEqual(payload.access, [{ type: 'repository', name: 'public/x', actions: ['pull'] }]);
    const pull = await as(bearer(anonymous), () => fetch(`${base}/v2/public/x/tags/list`));
    assert.equal(pull.status, 404); // past access control: the repository does not exist
    const push = await as(bearer(anonymous), () => fetch(`${base}/v2/public/x/blobs/uploads/`, { method: 'POST' }));
    assert.equal(push.status, 401);

    const wrong = await fetch(`${base}/auth/token?service=wharf`, { headers: { authorization: basic('alice', 'nope') } });
    const unknown = await fetch(`${base}/auth/token?service=wharf`, { headers: { authorization: basic('mallory', 'nope') } });
    assert.equal(wrong.status, 401);
    assert.equal(unknown.status, 401);
    assert.equal(wrong.headers.get('www-authenticate'), unknown.headers.get('www-authenticate'));
    assert.equal(await wrong.text(), await unknown.text());

    const many = new URLSearchParams({ service: 'wharf' });
    for (let i = 0; i < 101; i++) many.append('scope', `repository:r${i}:pull`);
    assert.equal((await fetch(`${base}/auth/token?${many}`)).status, 400);

    const otherService = await fetch(`${base}/auth/token?service=elsewhere`, { headers: { authorization: basic('alice', PASSWORDS.alice) } });
    assert.equal(otherService.status, 403);
  });

  it('answers the OAuth2 password grant on POST', async () => {
    const form = new URLSearchParams({ grant_type: 'password', username: 'alice', password: PASSWORDS.alice, service: 'wharf', scope: 'repository:a/app:pull', client_id: 'test' });
    const res = await fetch(`${base}/auth/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form });
    assert.equal(res.status, 200);
    const body = (await res.json()) as { access_token: string; scope: string };
    assert.equal(body.scope, 'repository:a/app:pull');
    assert.equal((await as(bearer(body.access_token), () => fetch(`${base}/v2/a/app/manifests/v1`))).status, 200);
    form.set('password', 'wrong');
    assert.equal((await fetch(`${base}/auth/token`, { method: 'POST', body: form })).status, 401);
    form.set('grant_type', 'refresh_token');
    assert.equal((await fetch(`${base}/auth/token`, { method: 'POST', body: form })).status, 400);
  });

  it('rejects expired, foreign-key, alg none, HS256-with-the-public-key, wrong-issuer, wrong-audience and not-yet-valid tokens', async () => {
    const access = [{ type: 'repository', name: 'a/app', actions: ['pull'] }];
    const now = Math.floor(Date.now() / 1000);
    const publicPem = createPublicKey(fx.signingKey).export({ type: 'spki', format: 'pem' }) as string;
    const kid = jwkThumbprint(createPublicKey(fx.signingKey));
    const { privateKey: stranger } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const bad: Record<string, string> = {
      expired: signToken(claims(access, { iat: now - 1000, nbf: now - 1000, exp: now - 120 }), fx.signingKey),
      'another key': signToken(claims(access), stranger),
      'another key, our kid': mint({ alg: 'RS256', typ: 'JWT', kid }, claims(access), signWith.rs256(stranger)),
      'alg none': `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url')}.${Buffer.from(JSON.stringify(claims(access))).toString('base64url')}.`,
      'alg none, signature': mint({ alg: 'none', typ: 'JWT' }, claims(access), () => Buffer.from('x')),
      'HS256 with the public key': mint({ alg: 'HS256', typ: 'JWT', kid }, claims(access), (data) => createHmac('sha256', publicPem).update(data).digest()),
      'wrong issuer': signToken(claims(access, { iss: 'someone-else' }), fx.signingKey),
      'wrong audience': signToken(claims(access, { aud: 'other-registry' }), fx.signingKey),
      'not yet valid': signToken(claims(access, { nbf: now + 600, exp: now + 900 }), fx.signingKey),
      'no expiry': signToken(claims(access, { exp: undefined }), fx.signingKey),
      'tampered claims': (() => {
        const [h, , s] = signToken(claims(access), fx.signingKey).split('.');
        const forged = Buffer.from(JSON.stringify(claims([{ type: 'repository', name: 'a/app', actions: ['pull', 'push'] }]))).toString('base64url');
        return `${h}.${forged}.${s}`;
      })(),
      garbage: 'not-a-token',
    };
    for (const [what, token] of Object.entries(bad)) {
      const res = await fetch(`${base}/v2/a/app/manifests/v1`, { headers: { authorization: `Bearer ${token}` } });
      assert.equal(res.status, 401, what);
      assert.match(res.headers.get('www-authenticate')!, /error="invalid_token"$/, what);
      assert.equal(await errorCode(res), 'UNAUTHORIZED', what);
    }
    const good = signToken(claims(access), fx.signingKey);
    assert.equal((await fetch(`${base}/v2/a/app/manifests/v1`, { headers: { authorization: `Bearer ${good}` } })).status, 200);
  });

  it('trusts an external issuer through the certificate bundle (kid or x5c chain) and the JWKS', async () => {
    const access = [{ type: 'repository', name: 'a/app', actions: ['pull'] }];
    const get = (token: string) => fetch(`${base}/v2/a/app/manifests/v1`, { headers: { authorization: `Bearer ${token}` } });
    const caKid = jwkThumbprint(createPublicKey(fx.caKey));
    const accepted: Record<string, string> = {
      'CA key by RFC 7638 kid': mint({ alg: 'ES256', typ: 'JWT', kid: caKid }, claims(access), signWith.es256(fx.caKey)),
      'leaf key with an x5c chain to the CA': mint(
        { alg: 'ES256', typ: 'JWT', x5c: [fx.leafCertDer.toString('base64'), fx.caCertDer.toString('base64')] },
        claims(access),
        signWith.es256(fx.leafKey),
      ),
      'leaf key with the leaf alone in x5c': mint({ alg: 'ES256', typ: 'JWT', x5c: [fx.leafCertDer.toString('base64')] }, claims(access), signWith.es256(fx.leafKey)),
      'Ed25519 key from the JWKS': mint({ alg: 'EdDSA', typ: 'JWT', kid: 'ed-1' }, claims(access), signWith.eddsa(fx.edKey)),
    };
    for (const [what, token] of Object.entries(accepted)) assert.equal((await get(token)).status, 200, what);

    const { privateKey: rogue, publicKey: roguePublic } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const refused: Record<string, string> = {
      'leaf key claiming the CA kid': mint({ alg: 'ES256', typ: 'JWT', kid: caKid }, claims(access), signWith.es256(fx.leafKey)),
      'untrusted jwk in the header': mint({ alg: 'ES256', typ: 'JWT', jwk: roguePublic.export({ format: 'jwk' }) }, claims(access), signWith.es256(rogue)),
      'x5c of the leaf, signed by another key': mint({ alg: 'ES256', typ: 'JWT', x5c: [fx.leafCertDer.toString('base64')] }, claims(access), signWith.es256(rogue)),
      'ES256 claimed for an Ed25519 kid': mint({ alg: 'ES256', typ: 'JWT', kid: 'ed-1' }, claims(access), signWith.es256(rogue)),
    };
    for (const [what, token] of Object.entries(refused)) assert.equal((await get(token)).status, 401, what);
  });

  it('needs an admin grant for the admin endpoints', async () => {
    const alice = await fetchToken(base, ['registry:admin:*'], { user: 'alice', password: PASSWORDS.alice });
    const denied = await fetch(`${base}/_wharf/admin/gc`, { headers: { authorization: `Bearer ${alice}` } });
    assert.equal(denied.status, 403);
    const admin = await fetchToken(base, ['registry:admin:*'], root);
    const allowed = await fetch(`${base}/_wharf/admin/gc`, { headers: { authorization: `Bearer ${admin}` } });
    assert.notEqual(allowed.status, 401);
    assert.notEqual(allowed.status, 403);
  });

  it('puts the token subject into events as the actor', async () => {
    const seen: RegistryEvent[] = [];
    const unsubscribe = wharf.bus.subscribe('wharf.events.>', (_subject, event) => {
      seen.push(event);
    });
    try {
      const token = await fetchToken(base, ['repository:a/actor:pull,push'], alice);
      const image = await as(bearer(token), () => pushImage(base, 'a/actor', 'v1'));
      const push = await eventually(() => {
        const found = seen.find((e) => e.action === 'push' && e.target.digest === image.digest && e.target.repository === 'a/actor');
        assert.ok(found, 'manifest push event');
        return found;
      });
      assert.deepEqual(push.actor, { name: 'alice' });
    } finally {
      unsubscribe();
    }
  });
});

describe('htpasswd mode', () => {
  let fx: AuthFixture;
  let wharf: TestWharf;
  let base: string;
  const logLines: string[] = [];

  before(async () => {
    fx = await makeAuthFixture(PASSWORDS);
    const logger = createLogger('debug', {}, { write: (line: string) => void logLines.push(line) });
    wharf = await startTestWharf(
      {
        'auth.mode': 'htpasswd',
        'auth.htpasswd.path': fx.htpasswdPath,
        'auth.htpasswd.realm': 'wharf test',
        'auth.policy': [...POLICY, { users: ['alice'], catalog: true }],
        'auth.groups': GROUPS,
      },
      { logger },
    );
    base = wharf.base;
  });
  after(async () => {
    await wharf?.close();
    await fx?.close();
  });

  it('answers every endpoint without credentials with 401 and a Basic challenge', async () => {
    for (const { method, path } of ENDPOINTS) {
      const res = await fetch(`${base}${path}`, { method, ...(hasBody(method) ? { body: 'x'.repeat(100) } : {}) });
      assert.equal(res.status, 401, `${method} ${path}`);
      assert.equal(res.headers.get('www-authenticate'), 'Basic realm="wharf test"', `${method} ${path}`);
    }
  });

  it('accepts the right password; a wrong one and an unknown user get the same 401', async () => {
    const ok = await fetch(`${base}/v2/`, { headers: { authorization: basic('alice', PASSWORDS.alice) } });
    assert.equal(ok.status, 200);
    const answers = [];
    for (const [user, password] of [
      ['alice', 'wrong'],
      ['nobody', 'wrong'],
      ['alice', ''],
      ['', PASSWORDS.alice],
    ] as const) {
      const res = await fetch(`${base}/v2/a/app/tags/list`, { headers: { authorization: basic(user, password) } });
      answers.push({ status: res.status, challenge: res.headers.get('www-authenticate'), body: await res.text() });
    }
    for (const a of answers) assert.deepEqual(a, answers[0]);
    assert.equal(answers[0]!.status, 401);
    const malformed = await fetch(`${base}/v2/`, { headers: { authorization: 'Basic !!!' } });
    assert.equal(malformed.status, 401);
  });

  it('applies the policy: push where allowed, 403 DENIED for an authenticated user without the grant, anonymous pull where the policy allows it', async () => {
    const aliceAuth = basic('alice', PASSWORDS.alice);
    const image = await as(aliceAuth, () => pushImage(base, 'a/app', 'v1'));
    const bobAuth = basic('bob', PASSWORDS.bob);
    assert.equal((await as(bobAuth, () => fetch(`${base}/v2/a/app/manifests/v1`))).status, 200);
    const bobPush = await as(bobAuth, () => fetch(`${base}/v2/a/app/blobs/uploads/`, { method: 'POST' }));
    assert.equal(bobPush.status, 403);
    assert.equal(await errorCode(bobPush), 'DENIED');
    const bobDelete = await as(bobAuth, () => fetch(`${base}/v2/a/app/manifests/${image.digest}`, { method: 'DELETE' }));
    assert.equal(bobDelete.status, 403);
    assert.equal((await as(bobAuth, () => fetch(`${base}/v2/_catalog`))).status, 403);
    // The catalog is a read model: it follows the push once the event pipeline has applied it.
    await eventually(async () => {
      const catalog = await as(aliceAuth, () => fetch(`${base}/v2/_catalog`));
      assert.deepEqual(await catalog.json(), { repositories: ['a/app'] }, 'a/app is in the catalog');
    });

    await as(aliceAuth, () => pushImage(base, 'alice/own', 'v1'));
    const publicRes = await fetch(`${base}/v2/public/none/tags/list`);
    assert.equal(publicRes.status, 404);
    const anonymousPush = await fetch(`${base}/v2/public/none/blobs/uploads/`, { method: 'POST' });
    assert.equal(anonymousPush.status, 401);
  });

  it('keeps passwords, Authorization headers and tokens out of the logs', async () => {
    await fetch(`${base}/v2/`, { headers: { authorization: basic('alice', PASSWORDS.alice) } });
    await fetch(`${base}/v2/`, { headers: { authorization: basic('alice', 'a-wrong-password-9') } });
    await fetch(`${base}/v2/`, { headers: { authorization: 'Bearer eyJhbGciOiJIUzI1NiJ9.secret-looking.token' } });
    const text = logLines.join('');
    assert.ok(text.includes('"request"'), 'requests were logged');
    for (const secret of [PASSWORDS.alice, 'a-wrong-password-9', Buffer.from(`alice:${PASSWORDS.alice}`).toString('base64'), 'secret-looking']) {
      assert.ok(!text.includes(secret), `log contains ${secret}`);
    }
  });
});

describe('htpasswd file', () => {
  it('takes only bcrypt entries and names the line of any other', () => {
    assert.throws(() => parseHtpasswd('alice:{SHA}abc\n', 'users'), /users:1: .*not a bcrypt hash/);
    assert.throws(() => parseHtpasswd('# c\nbroken line\n', 'users'), /users:2: not a user:hash line/);
    assert.equal(parseHtpasswd('# comment\n\nbob:$2y$05$' + 'a'.repeat(53) + '\n').size, 1);
  });

  it('re-reads the file when it changes: a user added later can log in, a removed one cannot', async () => {
    const fx = await makeAuthFixture({ alice: 'pw' });
    try {
      const file = new Htpasswd(fx.htpasswdPath);
      assert.equal(await file.verify('alice', 'pw'), true);
      const bcrypt = (await import('bcryptjs')).default;
      await writeFile(fx.htpasswdPath, `carol:${bcrypt.hashSync('pw2', 4)}\n`);
      await eventually(async () => assert.equal(await file.verify('carol', 'pw2'), true), 10_000, 250);
      assert.equal(await file.verify('alice', 'pw'), false, 'a verified password is forgotten when the file changes');
    } finally {
      await fx.close();
    }
  });

  it('checks an unknown user against a hash of the same cost as the real ones, so both take as long as a wrong password', async (t) => {
    const fx = await makeAuthFixture({ alice: 'pw', bob: 'pw2' }, 8);
    try {
      const file = new Htpasswd(fx.htpasswdPath);
      const costs: number[] = [];
      const original = (await import('bcryptjs')).default.compare;
      const bcrypt = (await import('bcryptjs')).default;
      bcrypt.compare = ((password: string, hash: string) => {
        costs.push(Number(hash.slice(4, 6)));
        return original(password, hash);
      }) as typeof bcrypt.compare;
      const time = async (user: string, password: string) => {
        const start = performance.now();
        assert.equal(await file.verify(user, password), false);
        return performance.now() - start;
      };
      const wrong: number[] = [];
      const unknown: number[] = [];
      try {
        for (let i = 0; i < 5; i++) {
          wrong.push(await time('alice', `wrong-${i}`));
          unknown.push(await time(`ghost-${i}`, `wrong-${i}`));
        }
      } finally {
        bcrypt.compare = original;
      }
      assert.deepEqual(costs, Array(10).fill(8));
      const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[2]!;
      t.diagnostic(`median ms: wrong password ${median(wrong).toFixed(1)}, unknown user ${median(unknown).toFixed(1)} (bcrypt cost 8)`);
    } finally {
      await fx.close();
    }
  });
});

describe('token mode with an external issuer only', () => {
  let fx: AuthFixture;
  let wharf: TestWharf;
  let base: string;
  const logLines: string[] = [];

  before(async () => {
    fx = await makeAuthFixture({});
    wharf = await startTestWharf(
      {
        'http.addr': '0.0.0.0:0',
        'auth.mode': 'token',
        'auth.token.realm': 'https://auth.example.com/token',
        'auth.token.service': 'registry.example.com',
        'auth.token.issuer': 'example-issuer',
        'auth.token.rootcertbundle': fx.caCertPath,
      },
      { logger: createLogger('info', {}, { write: (line: string) => void logLines.push(line) }) },
    );
    base = wharf.base.replace('0.0.0.0', '127.0.0.1');
  });
  after(async () => {
    await wharf?.close();
    await fx?.close();
  });

  it('names the configured realm and service in the challenge and serves no token endpoint', async () => {
    const res = await fetch(`${base}/v2/a/app/tags/list`);
    assert.equal(res.headers.get('www-authenticate'), 'Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/app:pull"');
    assert.equal((await fetch(`${base}/auth/token?service=registry.example.com`)).status, 404);
  });

  it('accepts its tokens and, not knowing its policy, asks for a token with the missing scope (401 insufficient_scope) rather than 403', async () => {
    const kid = jwkThumbprint(createPublicKey(fx.caKey));
    const token = mint(
      { alg: 'ES256', typ: 'JWT', kid },
      claims([{ type: 'repository', name: 'a/app', actions: ['pull'] }], { iss: 'example-issuer', aud: ['registry.example.com', 'other'] }),
      signWith.es256(fx.caKey),
    );
    const ok = await fetch(`${base}/v2/a/app/tags/list`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(ok.status, 404); // allowed: the repository does not exist
    const more = await fetch(`${base}/v2/a/app/blobs/uploads/`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
    assert.equal(more.status, 401);
    assert.match(more.headers.get('www-authenticate')!, /scope="repository:a\/app:pull,push",error="insufficient_scope"$/);
  });

  it('does not warn about an open registry when auth is on, even on a non-loopback address', () => {
    assert.ok(!logLines.some((l) => l.includes('auth.mode is none')), 'no warning with auth on');
  });
});

describe('auth.mode none on a non-loopback address', () => {
  it('logs a warning at start-up', async () => {
    const lines: string[] = [];
    const wharf = await startTestWharf({ 'http.addr': '0.0.0.0:0' }, { logger: createLogger('info', {}, { write: (line: string) => void lines.push(line) }) });
    try {
      const warning = lines.map((l) => JSON.parse(l) as { level: number; msg: string }).find((l) => l.msg.includes('auth.mode is none'));
      assert.ok(warning, 'a warning was logged');
      assert.equal(warning.level, 40);
    } finally {
      await wharf.close();
    }
  });
});

describe('auth configuration', () => {
  const load =
    (overrides: Record<string, unknown>, env: Record<string, string> = {}) =>
    () =>
      loadConfig({ env, overrides: overrides as Partial<Config> });

  it('refuses an unknown mode, a mode without what it needs, and TLS without its key', () => {
    assert.throws(load({ 'auth.mode': 'ldap' }), /auth.mode must be none, htpasswd or token/);
    assert.throws(load({ 'auth.mode': 'htpasswd' }), /needs auth.htpasswd.path/);
    assert.throws(load({ 'auth.mode': 'token' }), /needs a key to trust/);
    assert.throws(load({ 'auth.token.signingkey': '/k.pem' }), /checks users against auth.htpasswd.path/);
    assert.throws(load({ 'http.tls.certificate': '/c.pem' }), /go together/);
  });

  it('checks the policy and groups and names what is wrong', () => {
    assert.throws(
      load({}, { WHARF_AUTH_POLICY: '[{"users":["a"],"repositories":["x/*"],"actions":["pull","fly"]}]' }),
      /WHARF_AUTH_POLICY: auth.policy: rule 1: unknown action "fly"/,
    );
    assert.throws(load({}, { WHARF_AUTH_POLICY: '[{"repositories":["x/*"],"actions":["pull"]}]' }), /rule 1 names nobody/);
    assert.throws(load({}, { WHARF_AUTH_POLICY: '[{"users":["a"],"repository":["x/*"]}]' }), /rule 1: unknown key "repository"/);
    assert.throws(load({}, { WHARF_AUTH_POLICY: '[{"anonymous":true,"admin":true}]' }), /anonymous requests cannot be admin/);
    assert.throws(load({}, { WHARF_AUTH_GROUPS: '[{"name":"g"}]' }), /group 1 must be/);
    assert.throws(load({}, { WHARF_AUTH_POLICY: '{' }), /JSON text/);
    assert.doesNotThrow(load({}, { WHARF_AUTH_POLICY: JSON.stringify(POLICY), WHARF_AUTH_GROUPS: JSON.stringify(GROUPS) }));
  });

  it('stops start-up on an htpasswd entry that is not bcrypt, or a signing key it cannot read', async () => {
    const fx = await makeAuthFixture({ alice: 'pw' });
    try {
      await writeFile(fx.htpasswdPath, 'alice:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n');
      assert.throws(
        () => authFromConfig(loadConfig({ env: {}, overrides: { 'auth.mode': 'htpasswd', 'auth.htpasswd.path': fx.htpasswdPath } })),
        /auth.htpasswd.path: .*:1: .*not a bcrypt hash/,
      );
      await writeFile(fx.htpasswdPath, '');
      assert.throws(
        () =>
          authFromConfig(loadConfig({ env: {}, overrides: { 'auth.mode': 'token', 'auth.htpasswd.path': fx.htpasswdPath, 'auth.token.signingkey': join(fx.dir, 'missing.pem') } })),
        /auth.token.signingkey: cannot read/,
      );
    } finally {
      await fx.close();
    }
  });
});

describe('access policy', () => {
  const policy = new Policy(POLICY as PolicyRule[], GROUPS);
  it('matches * within a segment, ** across segments, ${user} as the user', () => {
    assert.equal(policy.allows('alice', 'repository', 'a/x/y', 'delete'), true);
    assert.equal(policy.allows('alice', 'repository', 'alice/tools', 'push'), true);
    assert.equal(policy.allows('bob', 'repository', 'alice/tools', 'pull'), false);
    assert.equal(policy.allows('alice', 'repository', 'shared/lib', 'pull'), true);
    assert.equal(policy.allows('alice', 'repository', 'shared/lib', 'push'), false);
    assert.equal(policy.allows(undefined, 'repository', 'public/x', 'pull'), true);
    assert.equal(policy.allows(undefined, 'repository', 'public/x/y', 'pull'), true);
    assert.equal(policy.allows('alice', 'registry', 'catalog', '*'), false);
    assert.equal(policy.allows('root', 'registry', 'admin', '*'), true);
    const single = new Policy([{ users: ['u'], repositories: ['lib/*'], actions: ['pull'] }]);
    assert.equal(single.allows('u', 'repository', 'lib/x', 'pull'), true);
    assert.equal(single.allows('u', 'repository', 'lib/x/y', 'pull'), false);
    assert.equal(single.allows('u', 'repository', 'libx', 'pull'), false);
  });
  it('grants the intersection, expanding * to the repository actions', () => {
    assert.deepEqual(policy.grant('bob', [{ type: 'repository', name: 'a/x', actions: ['*'] }]), [{ type: 'repository', name: 'a/x', actions: ['pull'] }]);
    assert.deepEqual(policy.grant('bob', [{ type: 'repository', name: 'b/x', actions: ['pull'] }]), []);
  });
});

describe('token verifier memory', () => {
  it('remembers a verified token until it expires, and never a refused one', () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const { privateKey: stranger } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const verifier = new TokenVerifier({ trust: buildTrustStore({ extraKeys: [createPublicKey(privateKey)] }), issuer: 'wharf', audience: 'wharf' });
    const now = Math.floor(Date.now() / 1000);
    const token = signToken(claims([], { exp: now + 100 }), privateKey);
    assert.equal(verifier.verify(token, now).iss, 'wharf');
    assert.equal(verifier.verify(token, now + 150).iss, 'wharf', 'within the leeway');
    assert.throws(() => verifier.verify(token, now + 161), /expired/);
    const forged = signToken(claims([]), stranger);
    assert.throws(() => verifier.verify(forged, now), TokenError);
    assert.throws(() => verifier.verify(forged, now), TokenError);
  });
});
