/**
 * Wharf's browser UI: a hash-routed single page over the public HTTP API. Served by the API at
 * <http.prefix>/ui/; everything it shows, a script can read from the same endpoints.
 */
import { Api } from './api.js';
import { route, type ViewContext } from './context.js';
import { h, notice, replace } from './dom.js';
import { Session, type UiConfig } from './session.js';
import { adminView } from './views/admin.js';
import { browseView, findView } from './views/browse.js';
import { imageView } from './views/image.js';
import { repositoryView } from './views/repository.js';
import { signInView } from './views/signin.js';

const config: UiConfig = JSON.parse(document.getElementById('wharf-config')?.textContent || '{"auth":"none"}');
// Everything before /ui/ is http.prefix.
const prefix = location.pathname.replace(/\/ui(\/.*)?$/, '');
const session = new Session(config);
const api = new Api(prefix, session);
(window as unknown as { wharf: unknown }).wharf = { api, session };

const main = document.getElementById('main')!;
const account = document.getElementById('account')!;
let generation = 0;

function drawAccount(): void {
  if (!session.canSignIn) {
    replace(account, config.auth === 'none' ? h('span', { class: 'who' }, 'Access control off') : null);
    return;
  }
  replace(
    account,
    session.user
      ? [
          h('span', { class: 'who' }, 'Signed in as ', h('strong', { id: 'user' }, session.user)),
          h(
            'button',
            {
              type: 'button',
              id: 'signout',
              onclick: () => {
                session.signOut();
                sessionStorage.setItem('wharf.notice', 'Signed out.');
                drawAccount();
                void render();
              },
            },
            'Sign out',
          ),
        ]
      : h('a', { href: route('signin', { next: location.hash.startsWith('#/signin') ? undefined : location.hash }), id: 'signin-link' }, 'Sign in'),
  );
}

session.onExpired = () => {
  sessionStorage.setItem('wharf.notice', 'Your session ended: sign in again.');
  drawAccount();
};

async function render(): Promise<void> {
  const mine = ++generation;
  const hash = location.hash;
  const raw = hash.replace(/^#\/?/, '');
  const q = raw.indexOf('?');
  const path = decodeURIComponent(q === -1 ? raw : raw.slice(0, q));
  const query = new URLSearchParams(q === -1 ? '' : raw.slice(q + 1));
  const ctx: ViewContext = {
    api,
    session,
    path,
    query,
    main,
    go: (hash) => {
      if (location.hash === hash) void render();
      else location.hash = hash;
    },
    current: () => mine === generation,
  };
  main.dataset.state = 'loading';
  main.setAttribute('aria-busy', 'true');
  drawAccount();
  for (const a of document.querySelectorAll<HTMLAnchorElement>('header nav a[data-section]')) {
    const active = a.dataset.section === (path.startsWith('admin') ? 'admin' : path.startsWith('signin') ? '' : 'browse');
    if (active) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  try {
    if (path === '' || path.startsWith('browse')) await browseView(ctx);
    else if (path.startsWith('repo/')) await repositoryView(ctx);
    else if (path.startsWith('image/')) await imageView(ctx);
    else if (path === 'find') await findView(ctx);
    else if (path === 'admin') await adminView(ctx);
    else if (path === 'signin') await signInView(ctx);
    else replace(main, h('h1', { tabindex: '-1', id: 'page-title' }, 'Not found'), h('p', {}, h('a', { href: route('') }, 'Back to the namespaces')));
  } catch (err) {
    if (mine === generation) replace(main, notice('error', `Something went wrong: ${(err as Error).message}`));
  }
  if (mine !== generation) return;
  // The view sent the page elsewhere (ctx.go): location.hash already names the new route, but main
  // still shows this one until the hashchange renders it, so only that render may say ready.
  if (location.hash !== hash) return;
  const flash = sessionStorage.getItem('wharf.notice');
  if (flash) {
    sessionStorage.removeItem('wharf.notice');
    main.prepend(notice('info', flash));
  }
  main.dataset.route = location.hash;
  main.dataset.state = 'ready';
  main.removeAttribute('aria-busy');
  performance.mark('wharf:rendered');
  // Focus the page's heading, so keyboard and screen reader users start at the new content.
  const title = document.getElementById('page-title');
  if (title && document.activeElement?.closest('main, dialog') == null && !document.activeElement?.matches('input')) title.focus({ preventScroll: true });
}

document.getElementById('find')!.addEventListener('submit', (e) => {
  e.preventDefault();
  const q = (document.getElementById('q') as HTMLInputElement).value.trim();
  if (q) location.hash = route('find', { q });
});

// "/" jumps to Find, as on most code hosts.
document.addEventListener('keydown', (e) => {
  if (e.key !== '/' || e.ctrlKey || e.metaKey || e.altKey) return;
  const target = e.target as HTMLElement;
  if (target.closest('input, textarea, select, dialog')) return;
  e.preventDefault();
  (document.getElementById('q') as HTMLInputElement).focus();
});

// The skip link must not change the hash (it is the route).
document.getElementById('skip')!.addEventListener('click', (e) => {
  e.preventDefault();
  main.focus();
});

window.addEventListener('hashchange', () => void render());
void render();
