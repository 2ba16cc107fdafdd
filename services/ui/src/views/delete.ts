import { errorText } from '../api.js';
import { h, justBefore, shortDigest } from '../dom.js';
import { route, type ViewContext } from '../context.js';
import { referrerKind, type Descriptor } from '../media.js';
import { confirmDialog } from './common.js';
import type { ListedManifest } from './repository.js';

/** The listing row of one manifest (its tags), found by a one-row keyset page at its digest. */
export async function listedManifest(ctx: ViewContext, name: string, digest: string): Promise<ListedManifest | undefined> {
  const answer = await ctx.api.get<{ manifests: ListedManifest[] }>(`/v2/${name}/_wharf/manifests`, { n: '1', last: justBefore(digest) });
  const row = answer.ok ? answer.body.manifests[0] : undefined;
  return row?.digest === digest ? row : undefined;
}

export async function referrersOf(ctx: ViewContext, name: string, digest: string): Promise<Descriptor[] | undefined> {
  const answer = await ctx.api.get<{ manifests?: Descriptor[] }>(`/v2/${name}/referrers/${digest}`);
  return answer.ok ? (answer.body.manifests ?? []) : undefined;
}

function done(ctx: ViewContext, hash: string, message: string): void {
  sessionStorage.setItem('wharf.notice', message);
  ctx.go(hash);
}

export async function deleteTag(ctx: ViewContext, name: string, tag: string, digest: string): Promise<void> {
  const row = await listedManifest(ctx, name, digest);
  const others = (row?.tags ?? []).filter((t) => t !== tag);
  const ok = await confirmDialog(
    `Delete tag ${tag}?`,
    [
      h(
        'p',
        {},
        `Only the tag ${name}:${tag} goes. The manifest ${shortDigest(digest)} stays, pullable by digest`,
        others.length ? ` and still tagged ${others.join(', ')}.` : ', untagged.',
      ),
      others.length ? null : h('p', { class: 'hint' }, 'An untagged manifest is kept or collected as gc.untagged says (docs/gc.md).'),
    ],
    'Delete tag',
  );
  if (!ok) return;
  const answer = await ctx.api.request('DELETE', `/v2/${name}/manifests/${tag}`);
  if (!answer.ok) return alertFailure(ctx, `Deleting tag ${tag}`, answer.refused ?? errorText(answer));
  done(
    ctx,
    route(`repo/${name}`, { tab: 'manifests' }),
    `Deleted tag ${tag}. Manifest ${shortDigest(digest)} stays${others.length ? `, tagged ${others.join(', ')}` : ', untagged'}.`,
  );
}

export async function deleteManifest(ctx: ViewContext, name: string, digest: string): Promise<void> {
  const [row, referrers] = await Promise.all([listedManifest(ctx, name, digest), referrersOf(ctx, name, digest)]);
  const tags = row?.tags ?? [];
  const refs = referrers ?? [];
  const ok = await confirmDialog(
    `Delete manifest ${shortDigest(digest)}?`,
    [
      h('p', {}, `The manifest ${digest} of ${name} goes, and with it:`),
      h(
        'ul',
        {},
        h('li', {}, tags.length ? `its tags: ${tags.join(', ')}` : 'no tags (it is untagged)'),
        h(
          'li',
          {},
          refs.length
            ? [
                `${refs.length} referrer${refs.length === 1 ? '' : 's'} lose their subject: `,
                refs.map((r) => `${referrerKind(r.artifactType)} ${shortDigest(r.digest)}`).join(', '),
                '. They are collected gc.grace later unless tagged.',
              ]
            : 'no referrers (signatures, SBOMs, attestations) point to it',
        ),
      ),
      h('p', { class: 'hint' }, 'Blobs only it used are reclaimed by garbage collection after gc.grace.'),
    ],
    'Delete manifest',
  );
  if (!ok) return;
  const answer = await ctx.api.request('DELETE', `/v2/${name}/manifests/${digest}`);
  if (!answer.ok) return alertFailure(ctx, `Deleting ${shortDigest(digest)}`, answer.refused ?? errorText(answer));
  done(ctx, route(`repo/${name}`, { tab: 'manifests' }), `Deleted manifest ${shortDigest(digest)}${tags.length ? ` and its tags ${tags.join(', ')}` : ''}.`);
}

function alertFailure(ctx: ViewContext, what: string, why: string): void {
  const box = h('div', { class: 'notice error', role: 'alert' }, `${what} failed: ${why}`);
  ctx.main.prepend(box);
  box.focus();
}
