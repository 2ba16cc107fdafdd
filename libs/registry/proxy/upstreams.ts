import type { ProxyUpstream } from '../../config/proxy.js';
import { RemoteRegistry } from '../../remote/index.js';

/** An upstream as configured: proxy.upstreams as libs/config parses it (a type only: nothing of config runs here). */
export type UpstreamSettings = ProxyUpstream;

/** One configured upstream with its client. */
export interface Upstream {
  config: UpstreamSettings;
  remote: RemoteRegistry;
}

/** A local repository name resolved to the upstream that serves it and the name it has there. */
export interface ProxiedName {
  upstream: Upstream;
  /** The repository's name upstream; undefined for the prefix itself, which names no upstream repository. */
  remoteName: string | undefined;
}

/** Which local names are proxied, and where to. */
export class UpstreamRoutes {
  readonly upstreams: Upstream[];

  constructor(configs: UpstreamSettings[], onAttemptFailed?: (upstream: string, info: { url: string; error: string }) => void) {
    this.upstreams = configs.map((config) => ({
      config,
      remote: new RemoteRegistry({
        name: config.name,
        urls: [config.url, ...config.mirrors],
        ...(config.username ? { credentials: { username: config.username, password: config.password } } : {}),
        timeoutMs: config.timeoutMs,
        retries: config.retries,
        userAgent: 'wharf-proxy',
        ...(onAttemptFailed ? { onAttemptFailed: (info: { url: string; error: string }) => onAttemptFailed(config.name, info) } : {}),
      }),
    }));
  }

  /** The upstream whose prefix holds `name`, or undefined when the name is not proxied. */
  route(name: string): ProxiedName | undefined {
    for (const upstream of this.upstreams) {
      const { prefix, path, library } = upstream.config;
      if (name === prefix) return { upstream, remoteName: undefined };
      if (!name.startsWith(`${prefix}/`)) continue;
      let rest = name.slice(prefix.length + 1);
      if (library && path === '' && !rest.includes('/')) rest = `library/${rest}`;
      return { upstream, remoteName: path === '' ? rest : `${path}/${rest}` };
    }
    return undefined;
  }
}
