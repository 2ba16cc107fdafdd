/** One challenge of a WWW-Authenticate header (RFC 7235): its scheme and parameters. */
export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/**
 * Parses a WWW-Authenticate value such as `Bearer realm="https://auth/token",service="reg",scope="repository:a:pull"`
 * or `Basic realm="x"`; several challenges may be listed, comma-separated. Scheme names are lower-cased.
 */
export function parseChallenges(header: string | string[] | undefined): Challenge[] {
  if (header === undefined) return [];
  const text = Array.isArray(header) ? header.join(', ') : header;
  const challenges: Challenge[] = [];
  const token = /\s*([!#$%&'*+.^_`|~0-9A-Za-z-]+)/y;
  const param = /\s*([!#$%&'*+.^_`|~0-9A-Za-z-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]*))\s*,?/y;
  let at = 0;
  while (at < text.length) {
    token.lastIndex = at;
    const scheme = token.exec(text);
    if (!scheme) break;
    at = token.lastIndex;
    const current: Challenge = { scheme: scheme[1]!.toLowerCase(), params: {} };
    challenges.push(current);
    for (;;) {
      param.lastIndex = at;
      const p = param.exec(text);
      if (!p) break;
      // A token followed by "=" is a parameter; a bare token starts the next challenge.
      current.params[p[1]!.toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : p[3]!;
      at = param.lastIndex;
    }
    while (at < text.length && (text[at] === ',' || text[at] === ' ')) at++;
  }
  return challenges;
}
