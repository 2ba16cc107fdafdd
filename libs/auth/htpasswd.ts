import { createHmac, randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import bcrypt from 'bcryptjs';

/** Parses an Apache htpasswd file; only bcrypt entries ($2a$, $2b$, $2y$), as in CNCF Distribution. */
export function parseHtpasswd(text: string, from = 'htpasswd'): Map<string, string> {
  const entries = new Map<string, string>();
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const colon = line.indexOf(':');
    if (colon <= 0) throw new Error(`${from}:${i + 1}: not a user:hash line`);
    const user = line.slice(0, colon);
    const hash = line.slice(colon + 1);
    if (!/^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$/.test(hash)) throw new Error(`${from}:${i + 1}: the entry of ${JSON.stringify(user)} is not a bcrypt hash (htpasswd -B)`);
    entries.set(user, hash);
  });
  return entries;
}

const CACHE_SECONDS = 60;
const CACHE_ENTRIES = 1000;

/**
 * Checks user:password against an htpasswd file, re-read when it changes. An unknown user is
 * checked against a dummy hash of the file's usual cost, so it takes as long as a wrong password.
 * A verified pair is remembered for a minute (under an HMAC with a per-process key, never the
 * password itself): Docker clients send Basic credentials on every request, and bcrypt is
 * deliberately slow. Only right passwords are cached, so the shortcut tells nothing new.
 */
export class Htpasswd {
  private entries = new Map<string, string>();
  private dummy = '';
  private mtimeMs = -1;
  private checkedAt = 0;
  private readonly cacheKey = randomBytes(32);
  private readonly verified = new Map<string, number>();

  constructor(private readonly path: string) {
    this.reload();
  }

  private reload(): void {
    const stat = statSync(this.path);
    this.checkedAt = Date.now();
    if (stat.mtimeMs === this.mtimeMs) return;
    this.entries = parseHtpasswd(readFileSync(this.path, 'utf8'), this.path);
    this.mtimeMs = stat.mtimeMs;
    this.verified.clear();
    const costs = [...this.entries.values()].map((h) => Number(h.slice(4, 6)));
    const usual = mode(costs) ?? 10;
    if (!this.dummy || bcrypt.getRounds(this.dummy) !== usual) this.dummy = bcrypt.hashSync(randomBytes(16).toString('hex'), usual);
  }

  /** Re-reads the file when its modification time changed, at most every two seconds; a broken file keeps the last good one. */
  private refresh(): void {
    if (Date.now() - this.checkedAt < 2000) return;
    try {
      this.reload();
    } catch {
      this.checkedAt = Date.now();
    }
  }

  /** Whether the file (as last re-read) has an entry for `user`: a refresh token of a removed user is refused. */
  has(user: string): boolean {
    this.refresh();
    return this.entries.has(user);
  }

  async verify(user: string, password: string): Promise<boolean> {
    this.refresh();
    const tag = createHmac('sha256', this.cacheKey).update(user).update('\u0000').update(password).digest('base64');
    const until = this.verified.get(tag);
    if (until !== undefined && until > Date.now()) return true;
    const hash = this.entries.get(user);
    const ok = await bcrypt.compare(password, hash ?? this.dummy);
    if (!ok || hash === undefined) return false;
    if (this.verified.size >= CACHE_ENTRIES) this.verified.clear();
    this.verified.set(tag, Date.now() + CACHE_SECONDS * 1000);
    return true;
  }
}

function mode(values: number[]): number | undefined {
  const counts = new Map<number, number>();
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
  let best: number | undefined;
  for (const [v, n] of counts) if (best === undefined || n > counts.get(best)!) best = v;
  return best;
}
