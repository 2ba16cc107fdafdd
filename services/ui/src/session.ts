/**
 * Who the UI acts as. With the built-in token issuer (auth.mode token), signing in exchanges
 * user name and password once, at GET /auth/token with offline_token=true, for a refresh token;
 * the password is dropped right after. Only the refresh token is kept (sessionStorage: gone when
 * the tab closes); access tokens for the scopes a page needs are fetched with it (POST /auth/token,
 * grant_type=refresh_token) and kept in memory. Signed out, tokens are anonymous ones.
 */

export interface Access {
  type: string;
  name: string;
  actions: string[];
}

export interface UiConfig {
  auth: 'none' | 'htpasswd' | 'token';
  /** The built-in issuer's path (same origin); absent with an external token service. */
  tokenPath?: string;
  service?: string;
}

interface Token {
  token: string;
  access: Access[];
  /** Seconds since the epoch. */
  exp: number;
}

const REFRESH_KEY = 'wharf.refresh';
const USER_KEY = 'wharf.user';

export function scopeString(a: Access): string {
  return `${a.type}:${a.name}:${a.actions.join(',')}`;
}

function claims(jwt: string): { sub?: string; exp?: number; access?: Access[] } {
  const part = jwt.split('.')[1] ?? '';
  const json = atob(
    part
      .replace(/-/g, '+')
      .replace(/_/g, '/')
      .padEnd(Math.ceil(part.length / 4) * 4, '='),
  );
  return JSON.parse(new TextDecoder().decode(Uint8Array.from(json, (c) => c.charCodeAt(0))));
}

function covers(granted: Access[], wanted: Access[]): boolean {
  return wanted.every((w) => w.actions.every((action) => granted.some((g) => g.type === w.type && g.name === w.name && (g.actions.includes(action) || g.actions.includes('*')))));
}

export class SignInError extends Error {}

export class Session {
  user: string | undefined;
  private refreshToken: string | undefined;
  private tokens: Token[] = [];
  /** Told when the session ends by itself (refresh token expired or revoked). */
  onExpired: () => void = () => {};

  constructor(readonly config: UiConfig) {
    this.refreshToken = sessionStorage.getItem(REFRESH_KEY) ?? undefined;
    this.user = this.refreshToken ? (sessionStorage.getItem(USER_KEY) ?? undefined) : undefined;
  }

  /** Whether the UI itself can sign in here: token mode with the built-in issuer. */
  get canSignIn(): boolean {
    return this.config.auth === 'token' && this.config.tokenPath !== undefined;
  }

  async signIn(user: string, password: string): Promise<void> {
    if (!this.canSignIn) throw new SignInError('This registry does not use the built-in token service, so the UI cannot sign in.');
    const basic = btoa(String.fromCharCode(...new TextEncoder().encode(`${user}:${password}`)));
    const url = `${this.config.tokenPath}?${new URLSearchParams({ service: this.config.service ?? '', offline_token: 'true', scope: 'registry:catalog:*' })}`;
    const res = await fetch(url, { headers: { authorization: `Basic ${basic}` }, credentials: 'omit', cache: 'no-store' });
    if (res.status === 401) throw new SignInError('Wrong user name or password.');
    if (!res.ok) throw new SignInError(`The token service answered ${res.status}.`);
    const body = (await res.json()) as { token?: string; access_token?: string; refresh_token?: string };
    if (!body.refresh_token) throw new SignInError('The token service issued no refresh token.');
    this.tokens = [];
    this.remember(body.access_token ?? body.token ?? '');
    this.refreshToken = body.refresh_token;
    this.user = claims(body.refresh_token).sub ?? user;
    sessionStorage.setItem(REFRESH_KEY, this.refreshToken);
    sessionStorage.setItem(USER_KEY, this.user);
  }

  signOut(): void {
    this.refreshToken = undefined;
    this.user = undefined;
    this.tokens = [];
    sessionStorage.removeItem(REFRESH_KEY);
    sessionStorage.removeItem(USER_KEY);
  }

  private remember(jwt: string): Token | undefined {
    if (!jwt) return undefined;
    const c = claims(jwt);
    const token = { token: jwt, access: c.access ?? [], exp: c.exp ?? 0 };
    this.tokens = [token, ...this.tokens.filter((t) => t.exp > Date.now() / 1000 + 10)].slice(0, 50);
    return token;
  }

  private cached(wanted: Access[]): Token | undefined {
    const now = Date.now() / 1000 + 10;
    return this.tokens.find((t) => t.exp > now && covers(t.access, wanted));
  }

  /**
   * A token for `wanted` (token mode only): a cached one that covers it, else a new one, which
   * holds what the policy grants of it (maybe less, maybe nothing). Undefined in other modes.
   */
  async tokenFor(wanted: Access[]): Promise<{ token: string; granted: boolean } | undefined> {
    if (this.config.auth !== 'token' || !this.config.tokenPath) return undefined;
    const hit = this.cached(wanted);
    if (hit) return { token: hit.token, granted: true };
    let res: Response;
    if (this.refreshToken) {
      const form = new URLSearchParams({
        grant_type: 'refresh_token',
        refresh_token: this.refreshToken,
        service: this.config.service ?? '',
        scope: wanted.map(scopeString).join(' '),
      });
      res = await fetch(this.config.tokenPath, { method: 'POST', body: form, credentials: 'omit', cache: 'no-store' });
      if (res.status === 400 || res.status === 401) {
        // invalid_grant: the refresh token expired, or the user is gone.
        this.signOut();
        this.onExpired();
        return this.tokenFor(wanted);
      }
    } else {
      const query = new URLSearchParams({ service: this.config.service ?? '' });
      for (const a of wanted) query.append('scope', scopeString(a));
      res = await fetch(`${this.config.tokenPath}?${query}`, { credentials: 'omit', cache: 'no-store' });
    }
    if (!res.ok) throw new Error(`token service answered ${res.status}`);
    const body = (await res.json()) as { token?: string; access_token?: string };
    const token = this.remember(body.access_token ?? body.token ?? '');
    return token && { token: token.token, granted: covers(token.access, wanted) };
  }

  /**
   * Whether the user may do `action` on the resource, as far as the UI can tell before asking:
   * from the token the issuer grants (token mode); always with auth off; with htpasswd, the
   * registry decides on each request (true here).
   */
  async may(type: string, name: string, action: string): Promise<boolean> {
    if (this.config.auth !== 'token') return true;
    const t = await this.tokenFor([{ type, name, actions: [action] }]);
    return t?.granted ?? false;
  }
}
