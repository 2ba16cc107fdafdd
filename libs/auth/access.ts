/**
 * Resource access as the Docker registry token specification writes it:
 * `repository:<name>:pull,push`, `registry:catalog:*`. A scope string is space-separated
 * resource scopes; a repository name may itself hold colons only before a port-like part,
 * so the type is before the first colon and the actions after the last one.
 */
export interface Access {
  type: string;
  name: string;
  actions: string[];
}

export function parseScope(scope: string): Access[] {
  const out: Access[] = [];
  for (const part of scope.split(' ')) {
    if (part === '') continue;
    const first = part.indexOf(':');
    const last = part.lastIndexOf(':');
    if (first <= 0 || last === first) continue;
    const actions = part
      .slice(last + 1)
      .split(',')
      .map((a) => a.trim())
      .filter(Boolean);
    out.push({ type: part.slice(0, first), name: part.slice(first + 1, last), actions });
  }
  return out;
}

export function formatScope(access: Access[]): string {
  return access.map((a) => `${a.type}:${a.name}:${a.actions.join(',')}`).join(' ');
}

/** Granted actions per resource; `*` grants every action on that resource. */
export class AccessSet {
  private readonly map = new Map<string, Set<string>>();

  constructor(items: Iterable<Access> = []) {
    for (const a of items) this.add(a);
  }

  add(a: Access): void {
    const key = `${a.type}\u0000${a.name}`;
    let set = this.map.get(key);
    if (!set) {
      set = new Set();
      this.map.set(key, set);
    }
    for (const action of a.actions) set.add(action);
  }

  allows(type: string, name: string, action: string): boolean {
    const set = this.map.get(`${type}\u0000${name}`);
    return set !== undefined && (set.has(action) || set.has('*'));
  }

  /** Whether every action of every item is granted. */
  allowsAll(items: Access[]): boolean {
    return items.every((a) => a.actions.every((action) => this.allows(a.type, a.name, action)));
  }

  toList(): Access[] {
    return [...this.map].map(([key, set]) => {
      const [type, name] = key.split('\u0000') as [string, string];
      return { type, name, actions: [...set].sort() };
    });
  }
}

/** Merges items on the same resource, so a challenge names each resource once: `repository:a:pull,push`. */
export function mergeAccess(items: Access[]): Access[] {
  return new AccessSet(items).toList().map((a) => ({ ...a, actions: orderActions(a.actions) }));
}

const ORDER = ['pull', 'push', 'delete', '*'];
function orderActions(actions: string[]): string[] {
  return [...actions].sort((a, b) => (ORDER.indexOf(a) + 1 || 99) - (ORDER.indexOf(b) + 1 || 99) || a.localeCompare(b));
}
