import { MANIFEST_TYPES } from '../api.js';
import { bytes, h, notice, replace, shortDigest, table, time, type Child } from '../dom.js';
import { route, type ViewContext } from '../context.js';
import { IMAGE_CONFIG_TYPES, isIndex, shortType, type Manifest } from '../media.js';
import { crumbs, failure, heading, pager } from './common.js';
import { deleteManifest, deleteTag } from './delete.js';

const PAGE = 25;

interface TagDetail {
  name: string;
  digest: string;
  createdAt: string;
  updatedAt: string;
}

export interface ListedManifest {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
  tags: string[];
  pushedAt: string;
}

/** The image size of a manifest (config + layers), or what it is when it has none. Filled in after the page is drawn. */
async function fillSize(ctx: ViewContext, name: string, digest: string, cell: HTMLElement): Promise<void> {
  const answer = await ctx.api.get<Manifest>(`/v2/${name}/manifests/${digest}`, undefined, MANIFEST_TYPES);
  if (!answer.ok || typeof answer.body !== 'object') return;
  const m = answer.body;
  const type = m.mediaType ?? answer.headers.get('content-type') ?? '';
  if (isIndex(type)) cell.textContent = `index · ${m.manifests?.length ?? 0} manifests`;
  else cell.textContent = bytes((m.config?.size ?? 0) + (m.layers ?? []).reduce((s, l) => s + l.size, 0));
}

/** Runs `jobs` a few at a time, so a page of tags does not open fifty requests at once. */
async function few(jobs: Array<() => Promise<void>>, width = 4): Promise<void> {
  let i = 0;
  const worker = async () => {
    while (i < jobs.length) await jobs[i++]!().catch(() => {});
  };
  await Promise.all(Array.from({ length: width }, worker));
}

function tabs(name: string, active: string): HTMLElement {
  const tab = (id: string, label: string) =>
    h('a', { href: route(`repo/${name}`, { tab: id === 'tags' ? undefined : id }), 'aria-current': id === active ? 'page' : undefined, class: 'tab' }, label);
  return h('nav', { class: 'tabs', 'aria-label': 'Repository sections' }, tab('tags', 'Tags'), tab('manifests', 'All manifests'), tab('history', 'Tag history'));
}

export async function repositoryView(ctx: ViewContext): Promise<void> {
  const name = ctx.path.replace(/^repo\//, '').replace(/\/+$/, '');
  const tab = ctx.query.get('tab') ?? 'tags';
  const mayDelete = ctx.session.may('repository', name, 'delete');
  const head = [crumbs(name.split('/').slice(0, -1).join('/'), name.split('/').pop()), heading(name), tabs(name, tab)];
  if (tab === 'manifests') return manifestsTab(ctx, name, head, await mayDelete);
  if (tab === 'history') return historyTab(ctx, name, head);
  return tagsTab(ctx, name, head, await mayDelete);
}

async function tagsTab(ctx: ViewContext, name: string, head: Child[], mayDelete: boolean): Promise<void> {
  const last = ctx.query.get('last') ?? undefined;
  const answer = await ctx.api.get<{ tags: TagDetail[] }>(`/v2/${name}/_wharf/tags`, { n: String(PAGE), last });
  if (!ctx.current()) return;
  if (!answer.ok) {
    replace(ctx.main, head, answer.status === 404 ? notice('error', `No repository named ${name}.`) : failure(ctx, answer, `Reading ${name}`));
    return;
  }
  const sizes: Array<() => Promise<void>> = [];
  const rows = answer.body.tags.map((t) => {
    const size = h('span', { class: 'size' }, '…');
    sizes.push(() => fillSize(ctx, name, t.digest, size));
    return [
      h('a', { href: route(`image/${name}:${t.name}`), class: 'tag' }, t.name),
      h('a', { href: route(`image/${name}@${t.digest}`), title: t.digest }, h('code', {}, shortDigest(t.digest))),
      size,
      time(t.createdAt),
      time(t.updatedAt),
      h(
        'span',
        { class: 'row-actions' },
        h('a', { href: route(`repo/${name}`, { tab: 'history', tag: t.name }), 'aria-label': `History of tag ${t.name}` }, 'History'),
        mayDelete
          ? h('button', { type: 'button', class: 'danger small', 'aria-label': `Delete tag ${t.name}`, onclick: () => deleteTag(ctx, name, t.name, t.digest) }, 'Delete')
          : null,
      ),
    ];
  });
  replace(
    ctx.main,
    head,
    mayDelete ? null : notice('info', 'Read only: deleting needs ', h('code', {}, `repository:${name}:delete`), '.'),
    table(`Tags of ${name}`, ['Tag', 'Digest', 'Size', 'Created', 'Updated', ''], rows, { empty: 'No tags. Untagged manifests are under All manifests.', id: 'tags' }),
    pager(ctx, answer.next, `repo/${name}`, {}),
  );
  void few(sizes);
}

async function manifestsTab(ctx: ViewContext, name: string, head: Child[], mayDelete: boolean): Promise<void> {
  const q = ctx.query;
  const filters = { tab: 'manifests', tagged: q.get('tagged') ?? undefined, artifactType: q.get('artifactType') ?? undefined, annotation: q.get('annotation') ?? undefined };
  const answer = await ctx.api.get<{ manifests: ListedManifest[] }>(`/v2/${name}/_wharf/manifests`, {
    n: String(PAGE),
    last: q.get('last') ?? undefined,
    tagged: filters.tagged,
    artifactType: filters.artifactType,
    annotation: filters.annotation,
  });
  if (!ctx.current()) return;
  const form = h(
    'form',
    {
      class: 'filters',
      'aria-label': 'Filter manifests',
      onsubmit: (e: Event) => {
        e.preventDefault();
        const data = new FormData(e.target as HTMLFormElement);
        const value = (k: string) => String(data.get(k) ?? '').trim() || undefined;
        ctx.go(route(`repo/${name}`, { tab: 'manifests', tagged: value('tagged'), artifactType: value('artifactType'), annotation: value('annotation') }));
      },
    },
    h(
      'label',
      {},
      'Tagged ',
      h(
        'select',
        { name: 'tagged' },
        h('option', { value: '', selected: !filters.tagged }, 'all'),
        h('option', { value: 'true', selected: filters.tagged === 'true' }, 'tagged'),
        h('option', { value: 'false', selected: filters.tagged === 'false' }, 'untagged'),
      ),
    ),
    h('label', {}, 'Artifact type ', h('input', { name: 'artifactType', value: filters.artifactType ?? '', placeholder: 'application/vnd…', size: '24' })),
    h('label', {}, 'Annotation ', h('input', { name: 'annotation', value: filters.annotation ?? '', placeholder: 'key=value', size: '24' })),
    h('button', { type: 'submit' }, 'Filter'),
  );
  if (!answer.ok) {
    replace(ctx.main, head, form, answer.status === 404 ? notice('error', `No repository named ${name}.`) : failure(ctx, answer, `Listing manifests of ${name}`));
    return;
  }
  const rows = answer.body.manifests.map((m) => [
    h('a', { href: route(`image/${name}@${m.digest}`), title: m.digest }, h('code', {}, shortDigest(m.digest))),
    // The listing's artifactType falls back to the config media type: for a plain image that says nothing new.
    m.artifactType && !IMAGE_CONFIG_TYPES.includes(m.artifactType) ? [shortType(m.artifactType), h('br'), h('small', {}, shortType(m.mediaType))] : shortType(m.mediaType),
    bytes(m.size),
    m.tags.length ? m.tags.map((t) => h('a', { href: route(`image/${name}:${t}`), class: 'tag' }, t)) : h('span', { class: 'badge' }, 'untagged'),
    time(m.pushedAt),
    mayDelete
      ? h(
          'button',
          { type: 'button', class: 'danger small', 'aria-label': `Delete manifest ${shortDigest(m.digest)}`, onclick: () => deleteManifest(ctx, name, m.digest) },
          'Delete',
        )
      : '',
  ]);
  replace(
    ctx.main,
    head,
    form,
    h(
      'p',
      { class: 'hint' },
      'Every manifest of the repository, tagged or not, in digest order. This listing follows pushes and deletes through the event pipeline, usually within a second.',
    ),
    table(`Manifests of ${name}`, ['Digest', 'Type', 'Manifest size', 'Tags', 'Pushed', ''], rows, { empty: 'No manifest matches.', id: 'manifests' }),
    pager(ctx, answer.next, `repo/${name}`, filters),
  );
}

async function historyTab(ctx: ViewContext, name: string, head: Child[]): Promise<void> {
  const tag = ctx.query.get('tag') ?? '';
  const form = h(
    'form',
    {
      class: 'filters',
      'aria-label': 'Choose a tag',
      onsubmit: (e: Event) => {
        e.preventDefault();
        const value = String(new FormData(e.target as HTMLFormElement).get('tag') ?? '').trim();
        ctx.go(route(`repo/${name}`, { tab: 'history', tag: value }));
      },
    },
    h('label', {}, 'Tag ', h('input', { name: 'tag', value: tag, required: true, pattern: '[A-Za-z0-9_][A-Za-z0-9._-]{0,127}' })),
    h('button', { type: 'submit' }, 'Show history'),
  );
  if (!tag) {
    replace(ctx.main, head, form, h('p', { class: 'empty' }, 'Every digest a tag has pointed to, newest first, also after the tag was deleted.'));
    return;
  }
  const answer = await ctx.api.get<{ history: Array<{ digest: string; createdAt: string }> }>(`/v2/${name}/_wharf/tags/${tag}/history`, {
    n: String(PAGE),
    last: ctx.query.get('last') ?? undefined,
  });
  if (!ctx.current()) return;
  replace(
    ctx.main,
    head,
    form,
    answer.ok
      ? [
          table(
            `History of ${name}:${tag}, newest first`,
            ['Pointed to', 'Since'],
            answer.body.history.map((e) => [h('a', { href: route(`image/${name}@${e.digest}`), title: e.digest }, h('code', {}, shortDigest(e.digest))), time(e.createdAt)]),
            { id: 'history' },
          ),
          pager(ctx, answer.next, `repo/${name}`, { tab: 'history', tag }),
        ]
      : answer.status === 404
        ? notice('error', `Tag ${tag} never existed in ${name}.`)
        : failure(ctx, answer, 'Reading the tag history'),
  );
}
