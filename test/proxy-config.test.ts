/** proxy.upstreams: defaults, every validation error named, the prefix → upstream name mapping, and start-up refusing a bad config with `wharf: ...` (exit 2). */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadConfig, parseUpstreams } from '../libs/config/index.js';
import { UpstreamRoutes } from '../libs/registry/proxy/upstreams.js';
import { runWharfCommand } from './helpers/processes.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'wharf-proxy-config-'));
  await writeFile(join(dir, 'pw'), 'hub-password\n');
});
after(() => rm(dir, { recursive: true, force: true }));

describe('parseUpstreams', () => {
  it('fills defaults and reads the password from a file or the environment', () => {
    const [hub, quay] = parseUpstreams(
      [
        { name: 'hub', url: 'https://registry-1.docker.io/', prefix: 'hub', username: 'me', passwordfile: join(dir, 'pw') },
        {
          name: 'quay',
          url: 'https://quay.io',
          mirrors: ['https://m1.example/', 'http://m2.example:5000'],
          prefix: 'mirrors/quay',
          path: 'org',
          username: 'u',
          passwordenv: 'QUAY_PW',
          ttl: '30s',
          retention: 0,
          onnotfound: 'forget',
          timeout: '5s',
          retries: 0,
        },
      ],
      { QUAY_PW: 'from-env' },
    );
    assert.deepEqual(hub, {
      name: 'hub',
      url: 'https://registry-1.docker.io',
      mirrors: [],
      prefix: 'hub',
      path: '',
      library: true,
      username: 'me',
      password: 'hub-password',
      ttlMs: 600_000,
      retentionMs: 168 * 3_600_000,
      onNotFound: 'serve',
      timeoutMs: 30_000,
      retries: 1,
    });
    assert.equal(quay!.library, false);
    assert.deepEqual(quay!.mirrors, ['https://m1.example', 'http://m2.example:5000']);
    assert.equal(quay!.password, 'from-env');
    assert.equal(quay!.ttlMs, 30_000);
    assert.equal(quay!.retentionMs, 0);
    assert.equal(quay!.onNotFound, 'forget');
  });

  const bad: Array<[string, unknown, RegExp]> = [
    ['not a list', { name: 'x' }, /must be a list of upstreams/],
    ['unknown key', [{ name: 'hub', url: 'http://a', prefix: 'hub', tll: '1m' }], /upstream "hub": unknown key tll/],
    ['no name', [{ url: 'http://a', prefix: 'hub' }], /upstream 0: name is required/],
    ['no url', [{ name: 'hub', prefix: 'hub' }], /upstream "hub": url is required/],
    ['bad url', [{ name: 'hub', url: 'ftp://a', prefix: 'hub' }], /url must be http or https/],
    ['credentials in url', [{ name: 'hub', url: 'https://u:p@a', prefix: 'hub' }], /must not carry credentials/],
    ['bad mirror', [{ name: 'hub', url: 'http://a', mirrors: ['nope'], prefix: 'hub' }], /mirrors\[0\] must be an absolute/],
    ['no prefix', [{ name: 'hub', url: 'http://a' }], /prefix is required/],
    ['upper-case prefix', [{ name: 'hub', url: 'http://a', prefix: 'Hub' }], /prefix is required/],
    ['bad path', [{ name: 'hub', url: 'http://a', prefix: 'hub', path: '/org' }], /path must be an upstream namespace/],
    ['bad ttl', [{ name: 'hub', url: 'http://a', prefix: 'hub', ttl: '10 minutes' }], /ttl must be a duration/],
    ['bad retention', [{ name: 'hub', url: 'http://a', prefix: 'hub', retention: -1 }], /retention must be a duration/],
    ['zero timeout', [{ name: 'hub', url: 'http://a', prefix: 'hub', timeout: 0 }], /timeout must be a duration/],
    ['bad onnotfound', [{ name: 'hub', url: 'http://a', prefix: 'hub', onnotfound: 'delete' }], /onnotfound must be serve or forget/],
    ['bad retries', [{ name: 'hub', url: 'http://a', prefix: 'hub', retries: 99 }], /retries must be an integer from 0 to 10/],
    [
      'missing password file',
      [{ name: 'hub', url: 'http://a', prefix: 'hub', username: 'u', passwordfile: '/nonexistent/pw' }],
      /cannot read passwordfile \/nonexistent\/pw: ENOENT/,
    ],
    ['unset password env', [{ name: 'hub', url: 'http://a', prefix: 'hub', username: 'u', passwordenv: 'WHARF_NO_SUCH_VAR_X' }], /WHARF_NO_SUCH_VAR_X \(passwordenv\) is not set/],
    ['both password sources', [{ name: 'hub', url: 'http://a', prefix: 'hub', username: 'u', passwordfile: 'a', passwordenv: 'B' }], /alternatives/],
    ['username without password', [{ name: 'hub', url: 'http://a', prefix: 'hub', username: 'u' }], /username needs a password/],
    [
      'same name twice',
      [
        { name: 'hub', url: 'http://a', prefix: 'a' },
        { name: 'hub', url: 'http://b', prefix: 'b' },
      ],
      /name "hub" is used twice/,
    ],
    [
      'nested prefixes',
      [
        { name: 'a', url: 'http://a', prefix: 'hub' },
        { name: 'b', url: 'http://b', prefix: 'hub/x' },
      ],
      /prefixes "hub" and "hub\/x" overlap/,
    ],
  ];
  for (const [what, value, message] of bad) {
    it(`refuses ${what}`, () => assert.throws(() => parseUpstreams(value, {}), message));
  }

  it('refuses a password without a username', () => {
    assert.throws(() => parseUpstreams([{ name: 'hub', url: 'http://a', prefix: 'hub', passwordenv: 'PW' }], { PW: 'x' }), /a password needs a username/);
  });

  it('is checked for overrides too, not only for file and environment values', () => {
    assert.throws(() => loadConfig({ env: {}, overrides: { 'proxy.upstreams': [{ name: 'hub' }] } }), /proxy\.upstreams: upstream "hub": url is required/);
  });
});

describe('UpstreamRoutes', () => {
  const routes = new UpstreamRoutes(
    parseUpstreams(
      [
        { name: 'hub', url: 'https://registry-1.docker.io', prefix: 'hub' },
        { name: 'team', url: 'http://r.example', prefix: 'mirrors/team', path: 'org/team' },
        { name: 'plain', url: 'http://p.example', prefix: 'plain' },
      ],
      {},
    ),
  );
  const remote = (name: string) => {
    const r = routes.route(name);
    return r ? [r.upstream.config.name, r.remoteName] : undefined;
  };
  it('maps local names to upstream names', () => {
    assert.deepEqual(remote('hub/alpine'), ['hub', 'library/alpine']);
    assert.deepEqual(remote('hub/library/alpine'), ['hub', 'library/alpine']);
    assert.deepEqual(remote('hub/bitnami/redis'), ['hub', 'bitnami/redis']);
    assert.deepEqual(remote('mirrors/team/app'), ['team', 'org/team/app']);
    assert.deepEqual(remote('plain/alpine'), ['plain', 'alpine']);
    assert.deepEqual(remote('hub'), ['hub', undefined]);
    assert.equal(remote('hubx/alpine'), undefined);
    assert.equal(remote('mirrors/other'), undefined);
  });
});

describe('start-up with a bad proxy config', () => {
  it('exits 2 with one `wharf:` line naming the key, from the environment', async () => {
    const { code, stderr } = await runWharfCommand(['all'], {
      WHARF_DATA_DIR: dir,
      WHARF_PROXY_UPSTREAMS: JSON.stringify([{ name: 'hub', url: 'https://registry-1.docker.io', prefix: 'hub', ttl: 'soon' }]),
    });
    assert.equal(code, 2, stderr);
    assert.match(stderr.trim(), /^wharf: WHARF_PROXY_UPSTREAMS: proxy\.upstreams: upstream "hub": ttl must be a duration/);
  });

  it('exits 2 naming an unknown key of an upstream in the YAML file', async () => {
    const file = join(dir, 'wharf.yaml');
    await writeFile(file, ['proxy:', '  upstreams:', '    - name: hub', '      url: https://registry-1.docker.io', '      prefix: hub', '      pasword: oops', ''].join('\n'));
    const { code, stderr } = await runWharfCommand(['all'], { WHARF_CONFIG: file, WHARF_DATA_DIR: dir });
    assert.equal(code, 2, stderr);
    assert.match(stderr.trim(), /^wharf: .*wharf\.yaml: proxy\.upstreams: upstream "hub": unknown key pasword/);
  });
});
