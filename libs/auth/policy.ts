import type { Access } from './access.js';

/** Who a rule is for. `authenticated` is every user who logged in; `anonymous` is a request without credentials. */
export interface Subjects {
  users?: string[];
  groups?: string[];
  authenticated?: boolean;
  anonymous?: boolean;
}

export interface PolicyRule extends Subjects {
  /** Repository name patterns: `*` within one path segment, `**` across segments, `${user}` the user's own name. */
  repositories: string[];
  /** pull, push, delete, or * for all three. */
  actions: string[];
}

/** The access policy as configured (`auth.policy`). */
export interface PolicyDocument {
  groups?: Record<string, string[]>;
  /** Every action everywhere, the catalog, and the admin endpoints. */
  admins?: Subjects;
  /** Who may list every repository (`registry:catalog:*`). */
  catalog?: Subjects;
  rules?: PolicyRule[];
}

export const REPOSITORY_ACTIONS = ['pull', 'push', 'delete'];

/** Returns what is wrong with a policy document, or undefined; used by the config key's check. */
export function checkPolicy(value: unknown): string | undefined {
  if (value === null || value === undefined) return undefined;
  if (typeof value !== 'object' || Array.isArray(value)) return 'must be a mapping with groups, admins, catalog and rules';
  const doc = value as Record<string, unknown>;
  for (const key of Object.keys(doc)) if (!['groups', 'admins', 'catalog', 'rules'].includes(key)) return `unknown policy key "${key}"`;
  const stringList = (v: unknown) => Array.isArray(v) && v.every((s) => typeof s === 'string');
  if (doc.groups !== undefined) {
    if (typeof doc.groups !== 'object' || doc.groups === null || Array.isArray(doc.groups)) return 'groups must map group names to lists of users';
    for (const [g, members] of Object.entries(doc.groups)) if (!stringList(members)) return `groups.${g} must be a list of user names`;
  }
  const subjects = (v: unknown, where: string, extra: string[] = []): string | undefined => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return `${where} must be a mapping`;
    for (const [k, x] of Object.entries(v)) {
      if (k === 'users' || k === 'groups') {
        if (!stringList(x)) return `${where}.${k} must be a list of names`;
      } else if (k === 'authenticated' || k === 'anonymous') {
        if (typeof x !== 'boolean') return `${where}.${k} must be true or false`;
      } else if (!extra.includes(k)) return `unknown key "${k}" in ${where}`;
    }
    return undefined;
  };
  for (const key of ['admins', 'catalog'] as const) {
    if (doc[key] === undefined) continue;
    const problem = subjects(doc[key], key);
    if (problem) return problem;
  }
  if (doc.rules !== undefined) {
    if (!Array.isArray(doc.rules)) return 'rules must be a list';
    for (const [i, rule] of doc.rules.entries()) {
      const where = `rules[${i}]`;
      const problem = subjects(rule, where, ['repositories', 'actions']);
      if (problem) return problem;
      const r = rule as Record<string, unknown>;
      if (!stringList(r.repositories) || (r.repositories as string[]).length === 0) return `${where}.repositories must be a non-empty list of name patterns`;
      if (!stringList(r.actions) || (r.actions as string[]).length === 0) return `${where}.actions must be a non-empty list`;
      for (const a of r.actions as string[]) if (![...REPOSITORY_ACTIONS, '*'].includes(a)) return `${where}.actions: unknown action "${a}" (pull, push, delete or *)`;
    }
  }
  return undefined;
}

function globToRegExp(pattern: string, user: string | undefined): RegExp | undefined {
  if (pattern.includes('${user}') && user === undefined) return undefined;
  const source = pattern
    .split(/(\*\*|\*|\$\{user\})/)
    .map((piece) => (piece === '**' ? '.*' : piece === '*' ? '[^/]*' : piece === '${user}' ? escape(user!) : escape(piece)))
    .join('');
  return new RegExp(`^${source}$`);
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The identity a request acts as: a user name, or undefined when anonymous. */
export type Principal = string | undefined;

/** Decides what a user may do; `grant` is the intersection of a request with that. */
export class Policy {
  private readonly doc: PolicyDocument;

  /** Without a document: every authenticated user may do everything but the admin endpoints, as with CNCF Distribution's htpasswd. */
  constructor(doc: PolicyDocument | undefined) {
    this.doc = doc ?? {
      catalog: { authenticated: true },
      rules: [{ authenticated: true, repositories: ['**'], actions: ['*'] }],
    };
  }

  private matches(subjects: Subjects | undefined, user: Principal): boolean {
    if (!subjects) return false;
    if (user === undefined) return subjects.anonymous === true;
    if (subjects.authenticated) return true;
    if (subjects.users?.includes(user)) return true;
    return (subjects.groups ?? []).some((g) => this.doc.groups?.[g]?.includes(user));
  }

  isAdmin(user: Principal): boolean {
    return user !== undefined && this.matches(this.doc.admins, user);
  }

  /** Whether `user` may take `action` on the resource. */
  allows(user: Principal, type: string, name: string, action: string): boolean {
    if (this.isAdmin(user)) return true;
    if (type === 'registry') return name === 'catalog' && this.matches(this.doc.catalog, user);
    if (type !== 'repository') return false;
    return (this.doc.rules ?? []).some(
      (rule) =>
        this.matches(rule, user) &&
        (rule.actions.includes('*') ? REPOSITORY_ACTIONS.includes(action) || action === '*' : rule.actions.includes(action)) &&
        rule.repositories.some((p) => globToRegExp(p, user)?.test(name)),
    );
  }

  /** The part of `requested` that `user` is allowed: what the token issuer puts in a token. */
  grant(user: Principal, requested: Access[]): Access[] {
    const out: Access[] = [];
    for (const a of requested) {
      const wanted = a.actions.includes('*') && a.type === 'repository' ? [...REPOSITORY_ACTIONS, ...a.actions.filter((x) => x !== '*')] : a.actions;
      const actions = [...new Set(wanted)].filter((action) => this.allows(user, a.type, a.name, action));
      if (actions.length > 0) out.push({ type: a.type, name: a.name, actions });
    }
    return out;
  }
}
