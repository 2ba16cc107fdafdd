/**
 * http.trustedproxies: X-Forwarded-Proto and X-Forwarded-Host count for the Bearer realm only
 * when the connection comes from a proxy the setting names; Location headers are paths, so they
 * resolve against whatever origin the client used. Bad entries stop Wharf before it starts.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { ConfigError, loadConfig } from '../libs/config/index.js';
import { fetchToken, makeAuthFixture, type AuthFixture } from './helpers/auth.js';
import { startTestWharf, type TestWharf } from './helpers/server.js';

const run = promisify(execFile);
const FORWARDED = { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'registry.example.com' };

describe('http.trustedproxies', () => {
  it('accepts addresses, CIDR blocks and the named ranges', () => {
    const config = loadConfig({ env: { WHARF_HTTP_TRUSTEDPROXIES: '10.0.0.0/8, fd00::/8,192.168.1.7,loopback,uniquelocal,linklocal' } });
    assert.deepEqual(config['http.trustedproxies'], ['10.0.0.0/8', 'fd00::/8', '192.168.1.7', 'loopback', 'uniquelocal', 'linklocal']);
    assert.deepEqual(loadConfig({ env: {} })['http.trustedproxies'], [], 'none by default');
  });

  it('refuses anything else, naming the key and the entry', () => {
    for (const bad of ['10.0.0.0/33', 'proxy.example.com', '1.2.3', '10.0.0.0/8/1', '::1/129', 'everything']) {
      assert.throws(
        () => loadConfig({ env: { WHARF_HTTP_TRUSTEDPROXIES: bad } }),
        (err: Error) => err instanceof ConfigError && err.message.includes('http.trustedproxies') && err.message.includes(JSON.stringify(bad)),
        bad,
      );
    }
  });

  it('a bad entry is a one-line wharf: error, exit 2, before anything starts', async () => {
    const err = await run(process.execPath, ['dist/services/cli/main.js', 'all'], {
      env: { ...process.env, WHARF_HTTP_TRUSTEDPROXIES: 'proxy.example.com', WHARF_DATA_DIR: '/nonexistent/never-created' },
    }).then(
      () => assert.fail('wharf started'),
      (e: Error & { code: number; stderr: string }) => e,
    );
    assert.equal(err.code, 2);
    assert.match(err.stderr.trim(), /^wharf: WHARF_HTTP_TRUSTEDPROXIES: http\.trustedproxies: "proxy\.example\.com" is not an IP address/);
    assert.equal(err.stderr.trim().split('\n').length, 1);
  });

  describe('behind a proxy', () => {
    let fx: AuthFixture;
    let trusted: TestWharf;
    let untrusted: TestWharf;
    const alice = { user: 'alice', password: 'alice-password' };

    before(async () => {
      fx = await makeAuthFixture({ alice: alice.password });
      const auth = { 'auth.mode': 'token', 'auth.htpasswd.path': fx.htpasswdPath, 'auth.token.signingkey': fx.signingKeyPath } as const;
      trusted = await startTestWharf({ ...auth, 'http.trustedproxies': ['loopback'] });
      untrusted = await startTestWharf({ ...auth, 'http.trustedproxies': ['10.0.0.0/8'] });
    });
    after(async () => {
      await trusted?.close();
      await untrusted?.close();
      await fx?.close();
    });

    it('names the scheme and host the client used in the realm when the proxy is trusted', async () => {
      const res = await fetch(`${trusted.base}/v2/`, { headers: FORWARDED });
      assert.equal(res.status, 401);
      assert.match(res.headers.get('www-authenticate')!, /^Bearer realm="https:\/\/registry\.example\.com\/auth\/token"/);
      const direct = await fetch(`${trusted.base}/v2/`);
      assert.match(direct.headers.get('www-authenticate')!, new RegExp(`^Bearer realm="${trusted.url}/auth/token"`), 'no headers: the Host');
    });

    it('ignores X-Forwarded-* from an address it does not trust', async () => {
      const res = await fetch(`${untrusted.base}/v2/`, { headers: FORWARDED });
      assert.match(res.headers.get('www-authenticate')!, new RegExp(`^Bearer realm="${untrusted.url}/auth/token"`));
    });

    it('answers Location as a path, which resolves against the origin the client used', async () => {
      const token = await fetchToken(trusted.base, ['repository:proxied/app:pull,push'], alice);
      const res = await fetch(`${trusted.base}/v2/proxied/app/blobs/uploads/`, { method: 'POST', headers: { ...FORWARDED, authorization: `Bearer ${token}` } });
      assert.equal(res.status, 202);
      const location = res.headers.get('location')!;
      assert.match(location, /^\/v2\/proxied\/app\/blobs\/uploads\/[^/]+$/);
      assert.equal(new URL(location, 'https://registry.example.com/v2/').origin, 'https://registry.example.com');
    });
  });
});
