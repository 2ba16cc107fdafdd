import { errorText, type Answer } from '../api.js';
import { h, notice, type Child } from '../dom.js';
import { route, type ViewContext } from '../context.js';

/** The notice for an answer that is not a success: refused (with what was missing) or an error. */
export function failure(ctx: ViewContext, answer: Answer<unknown>, what: string): HTMLElement {
  if (answer.refused !== undefined) {
    return notice(
      'refused',
      h('strong', {}, `Refused: ${what} needs `),
      h('code', {}, answer.refused),
      ctx.session.user ? `, which ${ctx.session.user} does not have.` : '.',
      ctx.session.canSignIn && !ctx.session.user ? [' ', h('a', { href: route('signin', { next: location.hash }) }, 'Sign in'), ' to get it.'] : null,
    );
  }
  return notice('error', `${what} failed: ${errorText(answer)}`);
}

/** Breadcrumbs for a repository or namespace path: each segment leads to its namespace page. */
export function crumbs(path: string, last?: Child): HTMLElement {
  const parts = path === '' ? [] : path.split('/');
  const items: Child[] = [h('li', {}, h('a', { href: route('') }, 'Registry'))];
  for (const [i, p] of parts.entries()) items.push(h('li', {}, h('a', { href: route(`browse/${parts.slice(0, i + 1).join('/')}`) }, p)));
  if (last) items.push(h('li', {}, last));
  return h('nav', { 'aria-label': 'Breadcrumb', class: 'crumbs' }, h('ol', {}, items));
}

/** "Next page" / "First page" links for a keyset listing; the cursor travels in the route. */
export function pager(ctx: ViewContext, next: string | undefined, base: string, extra: Record<string, string | undefined>): HTMLElement | null {
  const onFirst = !ctx.query.get('last');
  if (!next && onFirst) return null;
  return h(
    'nav',
    { class: 'pager', 'aria-label': 'Pages' },
    onFirst ? null : h('a', { href: route(base, { ...extra, last: undefined }) }, '« First page'),
    next ? h('a', { href: route(base, { ...extra, last: next }), rel: 'next' }, 'Next page »') : null,
  );
}

export function heading(text: Child, level: 'h1' | 'h2' = 'h1'): HTMLElement {
  return h(level, level === 'h1' ? { tabindex: '-1', id: 'page-title' } : {}, text);
}

/** A read-only command line with a copy button. */
export function command(label: string, text: string): HTMLElement {
  const code = h('code', {}, text);
  const status = h('span', { class: 'copied', role: 'status' });
  return h(
    'div',
    { class: 'command' },
    code,
    h(
      'button',
      {
        type: 'button',
        'aria-label': `Copy: ${label}`,
        onclick: async () => {
          try {
            await navigator.clipboard.writeText(text);
            status.textContent = 'Copied';
          } catch {
            // Clipboard access needs a secure context: select the text for Ctrl+C instead.
            const range = document.createRange();
            range.selectNodeContents(code);
            getSelection()?.removeAllRanges();
            getSelection()?.addRange(range);
            status.textContent = 'Selected: press Ctrl+C';
          }
        },
      },
      'Copy',
    ),
    status,
  );
}

/** A modal confirmation; resolves true when the user confirms. */
export function confirmDialog(title: string, body: Child[], action: string): Promise<boolean> {
  return new Promise((resolve) => {
    const dialog = h(
      'dialog',
      { 'aria-labelledby': 'confirm-title', class: 'confirm' },
      h('h2', { id: 'confirm-title' }, title),
      ...body,
      h(
        'form',
        { method: 'dialog', class: 'actions' },
        h('button', { type: 'submit', value: 'cancel', autofocus: true }, 'Cancel'),
        h('button', { type: 'submit', value: 'confirm', class: 'danger' }, action),
      ),
    );
    dialog.addEventListener('close', () => {
      resolve(dialog.returnValue === 'confirm');
      dialog.remove();
    });
    document.body.appendChild(dialog);
    dialog.showModal();
  });
}
