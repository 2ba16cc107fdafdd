import { MANIFEST_TYPES } from '../api.js';
import { bytes, h, notice, replace, shortDigest, table, time, type Child } from '../dom.js';
import { route, type ViewContext } from '../context.js';
import { IMAGE_CONFIG_TYPES, isIndex, platformText, referrerKind, shortType, type Descriptor, type Manifest } from '../media.js';
import { command, crumbs, failure, heading } from './common.js';
import { deleteManifest, deleteTag, listedManifest, referrersOf } from './delete.js';

/** `team/app:v1` or `team/app@sha256:...` → name and reference. Names hold neither ':' nor '@'. */
export function parseImageRef(ref: string): { name: string; tag?: string; digest?: string } {
  const at = ref.indexOf('@');
  if (at !== -1) return { name: ref.slice(0, at), digest: ref.slice(at + 1) };
  const colon = ref.lastIndexOf(':');
  return colon > ref.lastIndexOf('/') ? { name: ref.slice(0, colon), tag: ref.slice(colon + 1) } : { name: ref, tag: 'latest' };
}

const MAX_REFERRER_REQUESTS = 30;

/** The referrers of `digest`, and theirs (signatures of an SBOM...), as a nested list; bounded in requests. */
async function referrerTree(ctx: ViewContext, name: string, digest: string, budget: { left: number }, depth = 0): Promise<HTMLElement | null> {
  if (budget.left-- <= 0) return null;
  const refs = await referrersOf(ctx, name, digest);
  if (refs === undefined) return depth === 0 ? notice('error', 'Referrers could not be read.') : null;
  if (refs.length === 0) return depth === 0 ? h('p', { class: 'empty' }, 'Nothing refers to this manifest.') : null;
  const items = await Promise.all(
    refs.map(async (r) => {
      const below = depth < 3 ? await referrerTree(ctx, name, r.digest, budget, depth + 1) : null;
      return h(
        'li',
        {},
        h('span', { class: `kind kind-${referrerKind(r.artifactType).toLowerCase()}` }, referrerKind(r.artifactType)),
        ' ',
        h('a', { href: route(`image/${name}@${r.digest}`), title: r.digest }, h('code', {}, shortDigest(r.digest))),
        ' ',
        h('span', { class: 'artifact-type' }, r.artifactType ?? shortType(r.mediaType)),
        ` · ${bytes(r.size)}`,
        r.annotations?.['org.opencontainers.image.created'] ? [' · ', time(r.annotations['org.opencontainers.image.created'])] : null,
        below,
      );
    }),
  );
  return h('ul', { class: 'referrers', 'aria-label': depth === 0 ? 'Referrers' : 'Referrers of this referrer' }, items);
}

function annotationsTable(caption: string, annotations: Record<string, string> | undefined): HTMLElement {
  const rows = Object.entries(annotations ?? {}).map(([k, v]) => [h('code', {}, k), v]);
  return table(caption, ['Key', 'Value'], rows, { empty: 'No annotations.', id: 'annotations' });
}

/** The parts of an image config worth a glance; the blob is fetched only when it is small. */
async function configSummary(ctx: ViewContext, name: string, config: Descriptor): Promise<Child> {
  if (!IMAGE_CONFIG_TYPES.includes(config.mediaType) || config.size > 1024 * 1024) return null;
  const answer = await ctx.api.get<string>(`/v2/${name}/blobs/${config.digest}`);
  if (!answer.ok) return null;
  let c: {
    created?: string;
    os?: string;
    architecture?: string;
    variant?: string;
    config?: { Entrypoint?: string[]; Cmd?: string[]; User?: string; WorkingDir?: string; Labels?: Record<string, string> };
  };
  try {
    c = typeof answer.body === 'string' ? JSON.parse(answer.body) : (answer.body as typeof c);
  } catch {
    return null;
  }
  const row = (k: string, v: Child) => (v === undefined || v === '' ? null : h('div', {}, h('dt', {}, k), h('dd', {}, v)));
  return h(
    'dl',
    { class: 'facts' },
    row('Platform', [c.os, c.architecture, c.variant].filter(Boolean).join('/')),
    row('Created', c.created ? time(c.created) : undefined),
    row('Entrypoint', c.config?.Entrypoint ? h('code', {}, c.config.Entrypoint.join(' ')) : undefined),
    row('Command', c.config?.Cmd ? h('code', {}, c.config.Cmd.join(' ')) : undefined),
    row('User', c.config?.User),
    row('Working directory', c.config?.WorkingDir),
    c.config?.Labels && Object.keys(c.config.Labels).length
      ? row(
          'Labels',
          Object.entries(c.config.Labels).map(([k, v]) => h('div', {}, h('code', {}, k), ` = ${v}`)),
        )
      : null,
  );
}

function pullCommands(name: string, tag: string | undefined, digest: string): HTMLElement {
  const host = location.host;
  const byDigest = `${host}/${name}@${digest}`;
  const byTag = tag ? `${host}/${name}:${tag}` : undefined;
  const local = name.split('/').pop() ?? name;
  return h(
    'section',
    { 'aria-labelledby': 'pull-title' },
    h('h2', { id: 'pull-title' }, 'Pull'),
    byTag ? command('docker pull by tag', `docker pull ${byTag}`) : null,
    command('docker pull by digest', `docker pull ${byDigest}`),
    byTag ? command('podman pull by tag', `podman pull ${byTag}`) : null,
    command('podman pull by digest', `podman pull ${byDigest}`),
    byTag ? command('skopeo copy by tag', `skopeo copy docker://${byTag} oci:${local}:${tag}`) : null,
    command('skopeo copy by digest', `skopeo copy docker://${byDigest} oci:${local}:${tag ?? 'pulled'}`),
    command('skopeo inspect', `skopeo inspect docker://${byDigest}`),
    location.protocol === 'http:'
      ? h('p', { class: 'hint' }, 'Plain HTTP: add --tls-verify=false (podman, skopeo) or list the registry under insecure-registries (docker).')
      : null,
  );
}

export async function imageView(ctx: ViewContext): Promise<void> {
  const ref = parseImageRef(ctx.path.replace(/^image\//, ''));
  const { name } = ref;
  const reference = ref.digest ?? ref.tag!;
  const answer = await ctx.api.get<Manifest>(`/v2/${name}/manifests/${reference}`, undefined, MANIFEST_TYPES);
  if (!ctx.current()) return;
  const title = ref.digest ? `${name}@${shortDigest(ref.digest)}` : `${name}:${ref.tag}`;
  const head = [crumbs(name, h('a', { href: route(`repo/${name}`) }, 'tags')), heading(title)];
  if (!answer.ok || typeof answer.body !== 'object') {
    replace(ctx.main, head, answer.status === 404 ? notice('error', `${title} is not in the registry.`) : failure(ctx, answer, `Reading ${title}`));
    return;
  }
  const m = answer.body;
  const digest = answer.headers.get('docker-content-digest') ?? ref.digest ?? '';
  const mediaType = m.mediaType ?? answer.headers.get('content-type') ?? '';
  const size = Number(answer.headers.get('content-length') ?? 0) || new TextEncoder().encode(JSON.stringify(m)).length;
  const [listed, mayDelete, configFacts, referrers] = await Promise.all([
    listedManifest(ctx, name, digest),
    ctx.session.may('repository', name, 'delete'),
    m.config && !isIndex(mediaType) ? configSummary(ctx, name, m.config) : Promise.resolve(null),
    referrerTree(ctx, name, digest, { left: MAX_REFERRER_REQUESTS }),
  ]);
  if (!ctx.current()) return;
  const layers = m.layers ?? [];
  const total = (m.config?.size ?? 0) + layers.reduce((s, l) => s + l.size, 0);
  replace(
    ctx.main,
    head,
    h(
      'dl',
      { class: 'facts', id: 'summary' },
      h('div', {}, h('dt', {}, 'Digest'), h('dd', {}, h('code', {}, digest))),
      h('div', {}, h('dt', {}, 'Media type'), h('dd', {}, shortType(mediaType), ' ', h('small', {}, mediaType))),
      m.artifactType ? h('div', {}, h('dt', {}, 'Artifact type'), h('dd', {}, m.artifactType)) : null,
      h('div', {}, h('dt', {}, 'Manifest size'), h('dd', {}, bytes(size))),
      isIndex(mediaType) ? null : h('div', {}, h('dt', {}, 'Image size'), h('dd', {}, bytes(total), ` (config and ${layers.length} layer${layers.length === 1 ? '' : 's'})`)),
      h(
        'div',
        {},
        h('dt', {}, 'Tags'),
        h(
          'dd',
          {},
          listed ? (listed.tags.length ? listed.tags.map((t) => h('a', { href: route(`image/${name}:${t}`), class: 'tag' }, t)) : h('span', { class: 'badge' }, 'untagged')) : '–',
        ),
      ),
      listed ? h('div', {}, h('dt', {}, 'Pushed'), h('dd', {}, time(listed.pushedAt))) : null,
      m.subject
        ? h('div', {}, h('dt', {}, 'Refers to'), h('dd', {}, h('a', { href: route(`image/${name}@${m.subject.digest}`) }, h('code', {}, shortDigest(m.subject.digest)))))
        : null,
    ),
    pullCommands(name, ref.tag, digest),
    isIndex(mediaType)
      ? h(
          'section',
          { 'aria-labelledby': 'children-title' },
          h('h2', { id: 'children-title' }, 'Platforms'),
          table(
            'Manifests of this index',
            ['Platform', 'Digest', 'Media type', 'Size'],
            (m.manifests ?? []).map((c) => [
              platformText(c.platform),
              h('a', { href: route(`image/${name}@${c.digest}`), title: c.digest }, h('code', {}, shortDigest(c.digest))),
              shortType(c.mediaType),
              bytes(c.size),
            ]),
            { id: 'platforms' },
          ),
        )
      : h(
          'section',
          { 'aria-labelledby': 'layers-title' },
          h('h2', { id: 'layers-title' }, 'Config and layers'),
          m.config
            ? table(
                'Config',
                ['Digest', 'Media type', 'Size'],
                [[h('code', { title: m.config.digest }, shortDigest(m.config.digest)), shortType(m.config.mediaType), bytes(m.config.size)]],
                { id: 'config' },
              )
            : null,
          configFacts,
          table(
            `${layers.length} layer${layers.length === 1 ? '' : 's'}, ${bytes(layers.reduce((s, l) => s + l.size, 0))}`,
            ['#', 'Digest', 'Media type', 'Size'],
            layers.map((l, i) => [String(i + 1), h('code', { title: l.digest }, shortDigest(l.digest)), shortType(l.mediaType), bytes(l.size)]),
            { id: 'layers', empty: 'No layers.' },
          ),
        ),
    h('section', { 'aria-labelledby': 'annotations-title' }, h('h2', { id: 'annotations-title' }, 'Annotations'), annotationsTable('Manifest annotations', m.annotations)),
    h(
      'section',
      { 'aria-labelledby': 'referrers-title', id: 'referrers-section' },
      h('h2', { id: 'referrers-title' }, 'Referrers'),
      h('p', { class: 'hint' }, 'Signatures, SBOMs and attestations whose subject is this manifest.'),
      referrers,
    ),
    h(
      'section',
      { 'aria-labelledby': 'actions-title' },
      h('h2', { id: 'actions-title' }, 'Delete'),
      mayDelete
        ? h(
            'div',
            { class: 'actions' },
            ref.tag ? h('button', { type: 'button', class: 'danger', onclick: () => deleteTag(ctx, name, ref.tag!, digest) }, `Delete tag ${ref.tag}`) : null,
            h('button', { type: 'button', class: 'danger', onclick: () => deleteManifest(ctx, name, digest) }, 'Delete manifest'),
          )
        : notice('info', 'Deleting needs ', h('code', {}, `repository:${name}:delete`), ', which this session does not have.'),
    ),
  );
}
