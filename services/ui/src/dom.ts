/** A tiny element builder and the formatting every view shares. */

export type Child = Node | string | number | null | undefined | false | Child[];
type Attr = string | number | boolean | undefined | ((event: Event) => void);

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, Attr> = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === false) continue;
    if (typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (value === true) el.setAttribute(key, '');
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

export function append(parent: Node, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(parent, c);
    else parent.appendChild(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
  }
}

export function replace(parent: Element, ...children: Child[]): void {
  parent.replaceChildren();
  append(parent, children);
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
export function bytes(n: number | undefined): string {
  if (n === undefined || !Number.isFinite(n)) return '–';
  let v = n;
  let i = 0;
  while (v >= 1024 && i < UNITS.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(v < 10 ? 1 : 0)} ${UNITS[i]}`;
}

/** A <time> in UTC, seconds precision; the full ISO string in its datetime. */
export function time(iso: string | null | undefined): Node {
  if (!iso) return document.createTextNode('–');
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return document.createTextNode(iso);
  return h(
    'time',
    { datetime: d.toISOString() },
    d
      .toISOString()
      .replace('T', ' ')
      .replace(/\.\d+Z$/, 'Z'),
  );
}

/** sha256:0123456789ab, the whole digest in a title. */
export function shortDigest(digest: string): string {
  const [alg, hex] = digest.split(':');
  return hex ? `${alg}:${hex.slice(0, 12)}` : digest;
}

export function table(caption: string, headers: string[], rows: Child[][], opts: { empty?: string; id?: string } = {}): HTMLElement {
  if (rows.length === 0) return h('p', { class: 'empty', id: opts.id }, opts.empty ?? 'Nothing here.');
  return h(
    'div',
    { class: 'scroll', id: opts.id },
    h(
      'table',
      {},
      h('caption', {}, caption),
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          headers.map((t) => h('th', { scope: 'col' }, t)),
        ),
      ),
      h(
        'tbody',
        {},
        rows.map((r) =>
          h(
            'tr',
            {},
            r.map((c) => h('td', {}, c)),
          ),
        ),
      ),
    ),
  );
}

export function notice(kind: 'error' | 'info' | 'refused', ...children: Child[]): HTMLElement {
  return h('div', { class: `notice ${kind}`, role: kind === 'info' ? 'status' : 'alert' }, ...children);
}

/** The string just below every name starting with `prefix`, as a keyset `last`: names use [a-z0-9._/-:], all below '~'. */
export function justBefore(prefix: string): string {
  if (prefix === '') return '';
  const last = prefix.charCodeAt(prefix.length - 1);
  return `${prefix.slice(0, -1)}${String.fromCharCode(last - 1)}~`;
}
