/**
 * A real client against access control: skopeo with --creds, through the built-in token issuer
 * (Bearer) and through htpasswd (Basic): push, pull, list-tags and delete work with the grant and
 * fail without it.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { basic, makeAuthFixture, type AuthFixture } from './helpers/auth.js';
import { buildImage, readOciLayout, writeOciLayout, type Image } from './helpers/oci-layout.js';
import { skopeoSandbox } from './helpers/skopeo-sandbox.js';
import { startTestWharf, type TestWharf } from './helpers/server.js';

const run = promisify(execFile);
const SKOPEO = process.env.SKOPEO ?? 'skopeo';
const installed = await run(SKOPEO, ['--version']).then(
  () => true,
  () => false,
);

const USERS = { alice: 'alice-secret', bob: 'bob-secret' };
const POLICY = [
  { users: ['alice'], repositories: ['team/**'], actions: ['*'] },
  { users: ['bob'], repositories: ['team/**'], actions: ['pull'] },
];

for (const mode of ['token', 'htpasswd'] as const) {
  describe(`skopeo --creds with auth.mode ${mode}`, { skip: installed ? false : 'skopeo not installed' }, () => {
    let fx: AuthFixture;
    let wharf: TestWharf;
    let host: string;
    let tmp: string;
    let env: NodeJS.ProcessEnv;
    const image: Image = buildImage({ layers: 2 });

    async function skopeo(...args: string[]): Promise<string> {
      try {
        const { stdout } = await run(SKOPEO, ['--insecure-policy', '--registries.d', join(tmp, 'registries.d'), ...args], { env, timeout: 60_000, killSignal: 'SIGKILL' });
        return stdout;
      } catch (err) {
        const e = err as Error & { stderr?: string };
        throw Object.assign(new Error(`skopeo ${args.join(' ')}: ${e.stderr ?? e.message}`), { stderr: e.stderr ?? '' });
      }
    }
    const creds = (user: keyof typeof USERS, password = USERS[user]) => `${user}:${password}`;
    const push = (dest: string, ...flags: string[]) => skopeo('copy', ...flags, '--dest-tls-verify=false', `oci:${join(tmp, 'src')}:v1`, `docker://${host}/${dest}`);

    before(async () => {
      fx = await makeAuthFixture(USERS);
      wharf = await startTestWharf({
        'auth.mode': mode,
        'auth.htpasswd.path': fx.htpasswdPath,
        ...(mode === 'token' ? { 'auth.token.signingkey': fx.signingKeyPath } : {}),
        'auth.policy': POLICY,
      });
      host = new URL(wharf.base).host;
      ({ tmp, env } = await skopeoSandbox('wharf-skopeo-auth-'));
      await writeOciLayout(join(tmp, 'src'), { v1: image });
    });
    after(async () => {
      await wharf?.close();
      await fx?.close();
      if (tmp) await rm(tmp, { recursive: true, force: true });
    });

    it('refuses a push without credentials, with a wrong password, and by a user who may only pull', async () => {
      await assert.rejects(push('team/app:v1'), /unauthorized|authentication required/i);
      await assert.rejects(push('team/app:v1', '--dest-creds', creds('alice', 'wrong')), /unauthorized|authentication required|invalid username\/password/i);
      await assert.rejects(push('team/app:v1', '--dest-creds', creds('bob')), /denied: requested access to the resource is denied/);
    });

    it('logs in as docker login does (GET /v2/, challenge, credentials), and works from the stored login', async () => {
      await assert.rejects(skopeo('login', '--tls-verify=false', '-u', 'alice', '-p', 'wrong', host), /unauthorized|invalid username\/password|authentication required/i);
      await skopeo('login', '--tls-verify=false', '-u', 'alice', '-p', USERS.alice, host);
      await push('team/login:v1');
      const tags = JSON.parse(await skopeo('list-tags', '--tls-verify=false', `docker://${host}/team/login`)) as { Tags: string[] };
      assert.deepEqual(tags.Tags, ['v1']);
      await skopeo('logout', host);
      await assert.rejects(skopeo('list-tags', '--tls-verify=false', `docker://${host}/team/login`), /unauthorized|authentication required/i);
    });

    it('pushes, pulls, lists tags and deletes with the grant', async () => {
      await push('team/app:v1', '--dest-creds', creds('alice'));
      await push('team/app:v2', '--dest-creds', creds('alice'));

      const out = join(tmp, `out-${mode}`);
      await skopeo('copy', '--src-tls-verify=false', '--src-creds', creds('bob'), `docker://${host}/team/app:v1`, `oci:${out}:v1`);
      const layout = await readOciLayout(out);
      assert.equal(layout.descriptorFor('v1')?.digest, image.digest);
      assert.deepEqual(await layout.verify(), []);

      const tags = JSON.parse(await skopeo('list-tags', '--tls-verify=false', '--creds', creds('bob'), `docker://${host}/team/app`)) as { Tags: string[] };
      assert.deepEqual(tags.Tags.sort(), ['v1', 'v2']);

      await assert.rejects(skopeo('delete', '--tls-verify=false', '--creds', creds('bob'), `docker://${host}/team/app:v2`), /DENIED.*403 Forbidden/);
      await skopeo('delete', '--tls-verify=false', '--creds', creds('alice'), `docker://${host}/team/app:v1`);
      const gone = await fetch(`${wharf.base}/v2/team/app/manifests/${image.digest}`, {
        headers: mode === 'htpasswd' ? { authorization: basic('alice', USERS.alice) } : {},
      });
      assert.equal(gone.status, mode === 'htpasswd' ? 404 : 401);
      if (mode === 'htpasswd') {
        const left = await fetch(`${wharf.base}/v2/team/app/tags/list`, { headers: { authorization: basic('alice', USERS.alice) } });
        assert.deepEqual(((await left.json()) as { tags: string[] }).tags, []);
      }
    });
  });
}
