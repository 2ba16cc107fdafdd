/**
 * The browser UI end to end: content pushed with skopeo, then Debian's Chromium (playwright-core)
 * finds a nested repository, opens a tag, sees its layers and referrers, deletes a tag and sees the
 * manifest stay listed untagged, opens an index, uses Find from the keyboard, reads the operations
 * page and redrives a dead-lettered webhook; with token auth it also signs in and out and is
 * refused the operations page as a non-admin. Once with auth off, once with token auth. Every page
 * is screenshotted under test/artifacts/ and no page may log a console error.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import type { Page } from 'playwright-core';
import type { Config } from '../libs/config/index.js';
import { makeAuthFixture, type AuthFixture } from './helpers/auth.js';
import { chromiumMissing, openBrowser, rendered, unnamedControls, visit, type TestBrowser } from './helpers/browser.js';
import { buildArtifact, buildImage, buildIndex, writeOciLayout } from './helpers/oci-layout.js';
import { startTestWharf, testMode, type TestWharf } from './helpers/server.js';
import { skopeoSandbox } from './helpers/skopeo-sandbox.js';
import { eventually } from './helpers/wait.js';
import { startReceiver, type WebhookReceiver } from './helpers/webhook-receiver.js';

const run = promisify(execFile);
const SKOPEO = process.env.SKOPEO ?? 'skopeo';
const skopeoMissing = await run(SKOPEO, ['--version']).then(
  () => undefined,
  () => 'skopeo not installed',
);
const skip = chromiumMissing() ?? skopeoMissing ?? (testMode() === 'cluster' ? 'the UI suite runs in embedded mode' : undefined);

const REPO = 'team/platform/app';
const PASSWORDS = { alice: 'alice-secret-pw', ops: 'ops-secret-pw' };

const image = buildImage({ layers: 3, annotations: { 'org.opencontainers.image.title': 'the app' } });
const keep = buildImage({ layers: 1 });
const index = buildIndex();
const sbom = buildArtifact({ subject: image.descriptor, artifactType: 'application/spdx+json' });
const signature = buildArtifact({
  subject: image.descriptor,
  artifactType: 'application/vnd.dev.cosign.artifact.sig.v1+json',
  layerMediaType: 'application/vnd.dev.cosign.simplesigning.v1+json',
});
const sbomSignature = buildArtifact({
  subject: sbom.descriptor,
  artifactType: 'application/vnd.dev.cosign.artifact.sig.v1+json',
  layerMediaType: 'application/vnd.dev.cosign.simplesigning.v1+json',
});

for (const mode of (['none', 'token'] as const).filter((m) => !process.env.WHARF_UI_MODES || process.env.WHARF_UI_MODES.split(',').includes(m))) {
  describe(`the UI with auth ${mode === 'none' ? 'off' : 'token (built-in issuer)'}`, { skip: skip ?? false }, () => {
    let wharf: TestWharf;
    let fixture: AuthFixture | undefined;
    let receiver: WebhookReceiver;
    let browser: TestBrowser;
    let page: Page;
    let ui: string;
    let tmp: string;
    /** Console errors the test caused on purpose (a wrong password's 401), checked and then left out. */
    const expected: string[] = [];

    const go = (hash: string) => visit(page, ui, hash);
    const text = async (selector: string) => (await page.locator(selector).innerText()).trim();

    /** Reloads `hash` until `check` passes: for what reaches the listings through the event pipeline. */
    const eventuallyShows = (hash: string, check: () => Promise<void>) =>
      eventually(
        async () => {
          if (page.url() === `${ui}${hash}`) await page.reload();
          else await go(hash);
          await rendered(page, hash);
          await check();
        },
        60_000,
        200,
      );

    async function signIn(user: keyof typeof PASSWORDS): Promise<void> {
      await go('#/signin');
      await page.getByLabel('User name').fill(user);
      await page.getByLabel('Password').fill(PASSWORDS[user]);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.locator('#user').waitFor();
      assert.equal(await text('#user'), user);
      const stored = await page.evaluate(() => JSON.stringify({ ...sessionStorage }));
      assert.ok(!stored.includes(PASSWORDS[user]), 'the password is not kept in sessionStorage');
      assert.match(stored, /wharf\.refresh/, 'a refresh token is');
      assert.equal(await page.getByLabel('Password', { exact: true }).count(), 0, 'the sign-in form is gone');
    }

    async function signOut(): Promise<void> {
      await page.getByRole('button', { name: 'Sign out' }).click();
      await page.locator('#signin-link').waitFor();
      assert.equal(await page.evaluate(() => sessionStorage.getItem('wharf.refresh')), null);
    }

    async function checkAccessibleNames(where: string): Promise<void> {
      assert.deepEqual(await unnamedControls(page), [], `every control on ${where} has an accessible name`);
    }

    before(async () => {
      receiver = await startReceiver(() => 503);
      const overrides: Partial<Config> = {
        'notifications.endpoints': [{ name: 'ci', url: receiver.url, backoff: '20ms', maxbackoff: '50ms', maxattempts: 1 }],
      };
      if (mode === 'token') {
        fixture = await makeAuthFixture(PASSWORDS);
        Object.assign(overrides, {
          'auth.mode': 'token',
          'auth.htpasswd.path': fixture.htpasswdPath,
          'auth.token.signingkey': fixture.signingKeyPath,
          'auth.policy': [
            { users: ['alice'], repositories: ['team/**'], actions: ['*'], catalog: true },
            { users: ['ops'], admin: true },
          ],
        });
      }
      wharf = await startTestWharf(overrides);
      ui = `${wharf.base}/ui/`;
      const host = new URL(wharf.base).host;
      const sandbox = await skopeoSandbox('wharf-ui-');
      tmp = sandbox.tmp;
      const layout = join(tmp, 'layout');
      await writeOciLayout(layout, { v1: image, keep, multi: index, sbom, signature, sbomSignature });
      const creds = mode === 'token' ? ['--dest-creds', `ops:${PASSWORDS.ops}`] : [];
      const push = (ref: string, dest: string, ...extra: string[]) =>
        run(SKOPEO, ['--insecure-policy', 'copy', '--preserve-digests', ...creds, ...extra, '--dest-tls-verify=false', `oci:${layout}:${ref}`, `docker://${host}/${dest}`], {
          env: sandbox.env,
          timeout: 120_000,
        });
      await push('v1', `${REPO}:v1`);
      await push('keep', `${REPO}:keep`);
      await push('multi', `${REPO}:multi`, '--all');
      for (const [ref, a] of [
        ['sbom', sbom],
        ['signature', signature],
        ['sbomSignature', sbomSignature],
      ] as const)
        await push(ref, `${REPO}@${a.digest}`);
      await push('keep', 'team/other:latest');
      browser = await openBrowser(mode === 'none' ? 'open' : 'token');
      page = browser.page;
    });

    after(async () => {
      await browser?.close();
      await wharf?.close();
      await receiver?.down();
      await fixture?.close();
      if (tmp) await rm(tmp, { recursive: true, force: true });
    });

    if (mode === 'token') {
      it('refuses the namespace listing to an anonymous visitor and says what is missing', async () => {
        await go('#/');
        assert.match(await text('main'), /Refused: Listing namespaces needs registry:catalog:\*/);
        await browser.screenshot('anonymous-refused');
      });

      it('refuses a wrong password, then signs in without keeping the password', async () => {
        await go('#/signin');
        await page.getByLabel('User name').fill('alice');
        await page.getByLabel('Password').fill('not-the-password');
        const before = browser.problems.length;
        await page.getByRole('button', { name: 'Sign in' }).click();
        await page.locator('#signin-error .notice').waitFor();
        assert.match(await text('#signin-error'), /Wrong user name or password/);
        assert.equal(await page.getByLabel('Password').inputValue(), '', 'the password field is emptied');
        await browser.screenshot('signin-refused');
        // Chromium logs the token service's 401 as a failed resource load: the one expected error.
        const seen = browser.problems.splice(before);
        assert.ok(
          seen.every((p) => /401/.test(p.text) && p.url.includes('/auth/token')),
          JSON.stringify(seen),
        );
        expected.push(...seen.map((p) => p.text));
        await signIn('alice');
        await browser.screenshot('signed-in');
      });
    } else {
      it('says there is nothing to sign in to', async () => {
        await go('#/signin');
        assert.match(await text('main'), /Access control is off/);
        assert.equal(await page.getByRole('link', { name: 'Sign in' }).count(), 0);
        await browser.screenshot('signin-off');
      });
    }

    it('finds the nested repository through the namespace tree', async () => {
      await eventuallyShows('#/', async () => assert.ok(await page.getByRole('link', { name: 'team', exact: true }).count()));
      await checkAccessibleNames('the namespaces page');
      await browser.screenshot('namespaces');
      await page.getByRole('link', { name: 'team', exact: true }).click();
      await rendered(page, '#/browse/team');
      const below = await page.locator('ul.tree a').allInnerTexts();
      assert.deepEqual(below.sort(), ['other', 'platform']);
      await browser.screenshot('namespace-team');
      await page.getByRole('link', { name: 'platform', exact: true }).click();
      await rendered(page, '#/browse/team/platform');
      await eventually(async () => assert.ok(await page.locator('ul.tree a', { hasText: 'app' }).count()), 60_000, 200);
      await page.getByRole('link', { name: 'app', exact: true }).click();
      // app is a repository with nothing below it: the UI goes straight to it.
      await rendered(page, `#/repo/${REPO}`);
      assert.equal(await text('h1'), REPO);
      const tags = await page.locator('#tags tbody tr td:first-child').allInnerTexts();
      assert.deepEqual(tags, ['keep', 'multi', 'v1']);
      // Sizes are filled in after the first render, from each tag's manifest.
      await eventually(async () => assert.ok(!(await page.locator('#tags .size').allInnerTexts()).includes('…')), 60_000, 100);
      assert.match(await page.locator('#tags tr', { hasText: 'multi' }).innerText(), /index · 2 manifests/);
      await checkAccessibleNames('the repository page');
      await browser.screenshot('repository');
    });

    it('is readable at phone width: nothing overflows sideways', async () => {
      await page.setViewportSize({ width: 390, height: 844 });
      await go(`#/repo/${REPO}`);
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `the page is ${overflow}px wider than the phone`);
      await browser.screenshot('repository-phone');
      await page.setViewportSize({ width: 1280, height: 860 });
    });

    it('revisits a repository page with ETags (304s)', async () => {
      const before = await page.evaluate(() => (window as unknown as { wharf: { api: { stats: { notModified: number } } } }).wharf.api.stats.notModified);
      await go('#/');
      await go(`#/repo/${REPO}`);
      const afterVisit = await page.evaluate(() => (window as unknown as { wharf: { api: { stats: { notModified: number } } } }).wharf.api.stats.notModified);
      assert.ok(afterVisit > before, 'the second visit was answered 304 Not Modified at least once');
    });

    it('opens a tag: layers, config, annotations, referrers and pull commands', async () => {
      await page.locator('#tags').getByRole('link', { name: 'v1', exact: true }).click();
      await rendered(page, `#/image/${REPO}:v1`);
      assert.equal(await page.locator('#layers tbody tr').count(), 3);
      assert.match(await text('#config'), /OCI image config/);
      assert.match(await text('#summary'), new RegExp(image.digest));
      assert.match(await text('#annotations'), /org\.opencontainers\.image\.title\s+the app/);
      const tree = await text('#referrers-section');
      assert.match(tree, /SBOM/);
      assert.match(tree, /application\/spdx\+json/);
      assert.match(tree, /signature/);
      // The SBOM's own signature hangs below the SBOM.
      assert.equal(await page.locator('#referrers-section ul.referrers ul.referrers li').count(), 1);
      const host = new URL(wharf.base).host;
      const commands = await page.locator('.command code').allInnerTexts();
      assert.ok(commands.includes(`docker pull ${host}/${REPO}:v1`));
      assert.ok(commands.includes(`podman pull ${host}/${REPO}@${image.digest}`));
      assert.ok(commands.some((c) => c.startsWith(`skopeo copy docker://${host}/${REPO}@${image.digest}`)));
      await checkAccessibleNames('the image page');
      await browser.screenshot('image');
    });

    it('opens an index with its platforms', async () => {
      await go(`#/image/${REPO}:multi`);
      const platforms = await page.locator('#platforms tbody tr td:first-child').allInnerTexts();
      assert.deepEqual(platforms, ['linux/amd64', 'linux/arm64/v8']);
      await browser.screenshot('index');
    });

    it('lists every manifest with filters, and a tag history', async () => {
      await eventuallyShows(`#/repo/${REPO}?tab=manifests&tagged=false`, async () => assert.equal(await page.locator('#manifests tbody tr').count(), 5));
      assert.match(await text('#manifests'), /application\/spdx\+json/);
      await browser.screenshot('manifests-untagged');
      await go(`#/repo/${REPO}?tab=history&tag=v1`);
      assert.match(await text('#history'), new RegExp(image.digest.slice(0, 19)));
      await browser.screenshot('tag-history');
    });

    it('deletes a tag after a confirmation, and the manifest stays listed untagged', async () => {
      await go(`#/image/${REPO}:v1`);
      await page.getByRole('button', { name: 'Delete tag v1' }).click();
      const dialog = page.getByRole('dialog');
      await dialog.waitFor();
      assert.match(await dialog.innerText(), /stays, pullable by digest, untagged/);
      await browser.screenshot('confirm-delete-tag');
      await dialog.getByRole('button', { name: 'Delete tag' }).click();
      await rendered(page, `#/repo/${REPO}?tab=manifests`);
      assert.match(await text('main'), /Deleted tag v1/);
      await eventuallyShows(`#/repo/${REPO}?tab=manifests`, async () => {
        const row = page.locator('#manifests tr', { has: page.locator(`a[title="${image.digest}"]`) });
        assert.match(await row.innerText(), /untagged/);
      });
      await browser.screenshot('after-delete-untagged');
      await go(`#/repo/${REPO}`);
      assert.deepEqual(await page.locator('#tags tbody tr td:first-child').allInnerTexts(), ['keep', 'multi']);
    });

    it('says what else goes before deleting a manifest', async () => {
      await go(`#/image/${REPO}@${image.digest}`);
      await page.getByRole('button', { name: 'Delete manifest' }).click();
      const dialog = page.getByRole('dialog');
      assert.match(await dialog.innerText(), /2 referrers lose their subject/);
      await browser.screenshot('confirm-delete-manifest');
      await dialog.getByRole('button', { name: 'Cancel' }).click();
      await dialog.waitFor({ state: 'detached' });
    });

    it('finds a repository from the keyboard', async () => {
      await go('#/');
      await page.keyboard.press('/');
      assert.equal(await page.evaluate(() => document.activeElement?.id), 'q');
      await page.keyboard.type('team/pl');
      await page.keyboard.press('Enter');
      await rendered(page, '#/find?q=team%2Fpl');
      const link = page.locator('ul.tree').getByRole('link', { name: REPO });
      await link.focus();
      await page.keyboard.press('Enter');
      await rendered(page, `#/repo/${REPO}`);
      await browser.screenshot('find-keyboard');
    });

    if (mode === 'token') {
      it('refuses the operations page to a non-admin and says why', async () => {
        await go('#/admin');
        assert.match(await text('main'), /Refused: The operations page needs registry:admin:\*, which alice does not have/);
        await browser.screenshot('admin-refused');
        await signOut();
        await browser.screenshot('signed-out');
        await signIn('ops');
      });
    }

    it('shows webhook delivery state and redrives dead letters', async () => {
      await eventuallyShows('#/admin', async () => {
        const row = page.locator('#webhooks tbody tr', { hasText: 'ci' });
        // Endpoint, URL, State, Delivered, Pending, Failing, Dead, ...
        assert.ok(Number(await row.locator('td').nth(6).innerText()) >= 1, `dead letters shown: ${await row.innerText()}`);
        assert.match(await row.innerText(), /HTTP 503/);
      });
      assert.match(await text('#gc'), /Manifest reviews/);
      assert.match(await text('#lag'), /catalog has not caught up with\s+\d+/);
      await checkAccessibleNames('the operations page');
      await browser.screenshot('admin');
      await page.getByRole('button', { name: 'Redrive dead letters of ci' }).click();
      await page.locator('#admin-messages .notice', { hasText: 'back to pending' }).waitFor();
      assert.match(await text('#admin-messages'), /[1-9]\d* dead-lettered deliver(y|ies) back to pending/);
      await browser.screenshot('admin-redriven');
      if (mode === 'token') await signOut();
    });

    it('logged no console error on any page', () => {
      assert.deepEqual(browser.problems, []);
    });
  });
}
