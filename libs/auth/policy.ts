import type { Access } from './access.js';

/** Who a rule is for. `authenticated` is every user who logged in; `anonymous` is a request without credentials. */
export interface Subjects {
  users?: string[];
  groups?: string[];
  authenticated?: boolean;
  anonymous?: boolean;
}

/**
 * One rule of `auth.policy`: who (users, groups, every authenticated user, anonymous requests) may
 * do what: actions on repositories matching a pattern, listing the catalog, or everything (admin).
 */
export interface PolicyRule extends Subjects {
  /** Repository name patterns: `*` within one path segment, `**` across segments, `${user}` the user's own name. */
  repositories?: string[];
  /** pull, push, delete, or * for all three. */
  actions?: string[];
  /** `registry:catalog:*`: GET /v2/_catalog and the repository listings. */
  catalog?: boolean;
  /** Every action everywhere, the catalog, and the admin endpoints. */
  admin?: boolean;
}

/** `auth.groups`: named lists of users that rules can name. */
export interface GroupDefinition {
  name: string;
  users: string[];
}

export const REPOSITORY_ACTIONS = ['pull', 'push', 'delete'];

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const stringList = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === 'string');

/** What is wrong with an `auth.policy` value, or undefined. */
export function checkPolicy(value: unknown): string | undefined {
  if (!Array.isArray(value)) return 'must be a list of rules';
  for (const [i, rule] of value.entries()) {
    const where = `rule ${i + 1}`;
    if (!isObject(rule)) return `${where} must be a mapping`;
    for (const [k, x] of Object.entries(rule)) {
      if (k === 'users' || k === 'groups' || k === 'repositories' || k === 'actions') {
        if (!stringList(x)) return `${where}: ${k} must be a list of strings`;
      } else if (['authenticated', 'anonymous', 'catalog', 'admin'].includes(k)) {
        if (typeof x !== 'boolean') return `${where}: ${k} must be true or false`;
      } else return `${where}: unknown key "${k}"`;
    }
    if (!rule.users && !rule.groups && !rule.authenticated && !rule.anonymous) return `${where} names nobody (users, groups, authenticated or anonymous)`;
    if ((rule.repositories === undefined) !== (rule.actions === undefined)) return `${where}: repositories and actions go together`;
    if (!rule.repositories && !rule.catalog && !rule.admin) return `${where} grants nothing (repositories with actions, catalog or admin)`;
    for (const a of (rule.actions as string[] | undefined) ?? []) if (![...REPOSITORY_ACTIONS, '*'].includes(a)) return `${where}: unknown action "${a}" (pull, push, delete or *)`;
    if (rule.admin && rule.anonymous) return `${where}: anonymous requests cannot be admin`;
  }
  return undefined;
}

/** What is wrong with an `auth.groups` value, or undefined. */
export function checkGroups(value: unknown): string | undefined {
  if (!Array.isArray(value)) return 'must be a list of {name, users}';
  for (const [i, g] of value.entries()) {
    if (!isObject(g) || typeof g.name !== 'string' || !stringList(g.users) || Object.keys(g).some((k) => k !== 'name' && k !== 'users')) {
      return `group ${i + 1} must be {name: string, users: [names]}`;
    }
  }
  return undefined;
}

function globToRegExp(pattern: string, user: string | undefined): RegExp | undefined {
  if (pattern.includes('${user}') && user === undefined) return undefined;
  const source = pattern
    .split(/(\*\*|\*|\$\{user\})/)
    .map((piece) => (piece === '**' ? '.*' : piece === '*' ? '[^/]*' : piece === '${user}' ? escapeRegExp(user!) : escapeRegExp(piece)))
    .join('');
  return new RegExp(`^${source}$`);
}

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The identity a request acts as: a user name, or undefined when anonymous. */
export type Principal = string | undefined;

/** Decides what a user may do; `grant` is the intersection of a request with that. */
export class Policy {
  private readonly rules: PolicyRule[];
  private readonly groups: Map<string, Set<string>>;
  /** Compiled name patterns, by pattern and (for `${user}` patterns) user; bounded. */
  private readonly patterns = new Map<string, RegExp | undefined>();

  /** Without rules: every authenticated user may do everything but the admin endpoints, as with CNCF Distribution's htpasswd. */
  constructor(rules: PolicyRule[], groups: GroupDefinition[] = []) {
    this.rules = rules.length > 0 ? rules : [{ authenticated: true, repositories: ['**'], actions: ['*'], catalog: true }];
    this.groups = new Map(groups.map((g) => [g.name, new Set(g.users)]));
  }

  private matches(rule: PolicyRule, user: Principal): boolean {
    if (user === undefined) return rule.anonymous === true;
    if (rule.authenticated) return true;
    if (rule.users?.includes(user)) return true;
    return (rule.groups ?? []).some((g) => this.groups.get(g)?.has(user));
  }

  isAdmin(user: Principal): boolean {
    return user !== undefined && this.rules.some((r) => r.admin && this.matches(r, user));
  }

  /** Whether `user` may take `action` on the resource. */
  allows(user: Principal, type: string, name: string, action: string): boolean {
    if (this.isAdmin(user)) return true;
    if (type === 'registry') return name === 'catalog' && this.rules.some((r) => r.catalog && this.matches(r, user));
    if (type !== 'repository') return false;
    return this.rules.some(
      (rule) =>
        rule.actions !== undefined &&
        this.matches(rule, user) &&
        (rule.actions.includes(action) || (rule.actions.includes('*') && REPOSITORY_ACTIONS.includes(action))) &&
        rule.repositories!.some((p) => this.pattern(p, user)?.test(name)),
    );
  }

  private pattern(pattern: string, user: Principal): RegExp | undefined {
    const key = pattern.includes('${user}') ? `${pattern}\u0000${user ?? ''}` : pattern;
    if (!this.patterns.has(key)) {
      if (this.patterns.size >= 10_000) this.patterns.clear();
      this.patterns.set(key, globToRegExp(pattern, user));
    }
    return this.patterns.get(key);
  }

  /** The part of `requested` that `user` is allowed: what the token issuer puts in a token. */
  grant(user: Principal, requested: Access[]): Access[] {
    const out: Access[] = [];
    for (const a of requested) {
      const wanted = a.type === 'repository' && a.actions.includes('*') ? [...REPOSITORY_ACTIONS, ...a.actions.filter((x) => x !== '*')] : a.actions;
      const actions = [...new Set(wanted)].filter((action) => this.allows(user, a.type, a.name, action));
      if (actions.length > 0) out.push({ type: a.type, name: a.name, actions });
    }
    return out;
  }
}
