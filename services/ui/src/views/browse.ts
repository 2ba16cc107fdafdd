import { h, justBefore, notice, replace } from '../dom.js';
import { route, type ViewContext } from '../context.js';
import { crumbs, failure, heading, pager } from './common.js';

const PAGE = 100;

/** Whether `name` is a repository holding manifests: the first catalog name at or after it. */
async function isRepository(ctx: ViewContext, name: string): Promise<boolean> {
  const answer = await ctx.api.get<{ repositories: string[] }>('/v2/_catalog', { n: '1', last: justBefore(name) });
  return answer.ok && answer.body.repositories[0] === name;
}

/** A namespace page: the segments below it (paged), and a link to the repository of that name if there is one. */
export async function browseView(ctx: ViewContext): Promise<void> {
  const path = ctx.path.replace(/^browse\/?/, '').replace(/\/+$/, '');
  const last = ctx.query.get('last') ?? undefined;
  const listing = path === '' ? '/v2/_wharf/repositories' : `/v2/${path}/_wharf/repositories`;
  const [children, repo] = await Promise.all([
    ctx.api.get<{ repositories: string[] }>(listing, { n: String(PAGE), last }),
    path === '' ? Promise.resolve(false) : isRepository(ctx, path),
  ]);
  if (!ctx.current()) return;
  // A repository with nothing below it: show the repository itself.
  if (repo && children.ok && children.body.repositories.length === 0 && !last) {
    ctx.go(route(`repo/${path}`));
    return;
  }
  replace(
    ctx.main,
    crumbs(path),
    heading(path === '' ? 'Namespaces' : path),
    repo ? notice('info', h('a', { href: route(`repo/${path}`), class: 'repo-link' }, `Open repository ${path}`)) : null,
    children.ok
      ? [
          children.body.repositories.length === 0
            ? h('p', { class: 'empty' }, path === '' ? 'The registry holds no repositories yet.' : 'Nothing below this namespace.')
            : h(
                'ul',
                { class: 'tree', 'aria-label': path === '' ? 'Top-level namespaces' : `Below ${path}` },
                children.body.repositories.map((child) => {
                  const full = path === '' ? child : `${path}/${child}`;
                  return h('li', {}, h('a', { href: route(`browse/${full}`) }, child));
                }),
              ),
          pager(ctx, children.next, path === '' ? '' : `browse/${path}`, {}),
        ]
      : [failure(ctx, children, 'Listing namespaces'), h('p', {}, 'You can still open a repository by its name with Find above.')],
  );
}

/** Find: repositories whose name starts with what was typed (a keyset page of the catalog). */
export async function findView(ctx: ViewContext): Promise<void> {
  const q = (ctx.query.get('q') ?? '').trim().toLowerCase();
  const last = ctx.query.get('last') ?? justBefore(q);
  const answer = await ctx.api.get<{ repositories: string[] }>('/v2/_catalog', { n: String(PAGE), last });
  if (!ctx.current()) return;
  const matches = answer.ok ? answer.body.repositories.filter((r) => r.startsWith(q)) : [];
  const more = answer.ok && matches.length === answer.body.repositories.length ? answer.next : undefined;
  replace(
    ctx.main,
    heading(`Repositories starting with “${q}”`),
    q ? h('p', {}, h('a', { href: route(`repo/${q}`) }, `Open ${q} as a repository`)) : null,
    answer.ok
      ? [
          matches.length === 0
            ? h('p', { class: 'empty' }, 'No repository name starts with that.')
            : h(
                'ul',
                { class: 'tree', 'aria-label': 'Matching repositories' },
                matches.map((r) => h('li', {}, h('a', { href: route(`repo/${r}`) }, r))),
              ),
          pager(ctx, more, 'find', { q }),
        ]
      : failure(ctx, answer, 'Searching the catalog'),
  );
}
