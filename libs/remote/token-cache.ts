/** Bearer tokens by (realm, service, scope), each kept until shortly before it expires. */
export class TokenCache {
  private readonly tokens = new Map<string, { token: string; expiresAt: number }>();

  constructor(private readonly now: () => number = Date.now) {}

  get(key: string): string | undefined {
    const entry = this.tokens.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt <= this.now()) {
      this.tokens.delete(key);
      return undefined;
    }
    return entry.token;
  }

  /**
   * `expiresInSeconds` as the token endpoint said (60 when it did not, per the Docker token
   * specification); a token is dropped 10% of its life (at most 30 s) early, so none is sent just
   * as it runs out.
   */
  set(key: string, token: string, expiresInSeconds: number, issuedAt?: number): void {
    const life = Math.max(expiresInSeconds, 1) * 1000;
    const start = issuedAt !== undefined && issuedAt <= this.now() ? issuedAt : this.now();
    this.tokens.set(key, { token, expiresAt: start + life - Math.min(life / 10, 30_000) });
  }

  delete(key: string): void {
    this.tokens.delete(key);
  }
}
