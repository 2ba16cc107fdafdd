import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ifNoneMatchHits } from './routes/wharf.js';

/*
 * Serves the browser UI (services/ui, bundled into dist/ui by scripts/build-js.mjs) at
 * <prefix>/ui/. Only static files: the UI talks to the public API like any script. Every file is
 * read once at start-up, with a content ETag and a gzip copy; `no-cache` makes the browser
 * revalidate (a 304) on each visit, so a new build is picked up at once. The CSP allows nothing
 * but this origin: no CDN, no inline script, no remote connection.
 */

export const UI_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " + "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.json': 'application/json',
  '.map': 'application/json',
};

interface Asset {
  type: string;
  etag: string;
  body: Buffer;
  gzip: Buffer;
}

/** dist/ui, seen from this module in dist/services/api (built) or services/api (source, under tsx). */
export function defaultUiDir(): string {
  const up = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
  return basename(up) === 'dist' ? join(up, 'ui') : join(up, 'dist', 'ui');
}

/** What the UI must know before its first request: how this registry authenticates (docs/auth.md). */
export interface UiConfig {
  auth: 'none' | 'htpasswd' | 'token';
  /** Path of the built-in token service; absent with an external one (the UI's CSP cannot reach it). */
  tokenPath?: string;
  service?: string;
}

function loadAssets(dir: string, config: UiConfig): Map<string, Asset> {
  const assets = new Map<string, Asset>();
  if (!existsSync(join(dir, 'index.html'))) return assets;
  for (const name of readdirSync(dir)) {
    const type = TYPES[extname(name)];
    if (!type) continue;
    let body = readFileSync(join(dir, name));
    if (name === 'index.html') {
      // A data block, not a script: the CSP still forbids every inline script.
      const json = JSON.stringify(config).replace(/</g, '\\u003c');
      body = Buffer.from(body.toString('utf8').replace('<!--wharf-config-->', `<script id="wharf-config" type="application/json">${json}</script>`));
    }
    const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`;
    assets.set(name, { type, etag, body, gzip: gzipSync(body, { level: 9 }) });
  }
  return assets;
}

function send(request: FastifyRequest, reply: FastifyReply, asset: Asset) {
  reply
    .header('content-type', asset.type)
    .header('etag', asset.etag)
    .header('cache-control', 'no-cache')
    .header('vary', 'Accept-Encoding')
    .header('content-security-policy', UI_CSP)
    .header('x-content-type-options', 'nosniff')
    .header('referrer-policy', 'no-referrer')
    .header('x-frame-options', 'DENY');
  if (ifNoneMatchHits(request.headers['if-none-match'], asset.etag)) return reply.code(304).send();
  const gzip = /\bgzip\b/.test(String(request.headers['accept-encoding'] ?? ''));
  const body = gzip ? asset.gzip : asset.body;
  if (gzip) reply.header('content-encoding', 'gzip');
  reply.header('content-length', body.length);
  return reply.code(200).send(request.method === 'HEAD' ? undefined : body);
}

/** Installs GET/HEAD <prefix>/ui, <prefix>/ui/ and <prefix>/ui/<file>; `warn` is told when the build is missing. */
export function installUi(app: FastifyInstance, prefix: string, config: UiConfig, warn: (message: string) => void, dir = defaultUiDir()): void {
  const assets = loadAssets(dir, config);
  if (assets.size === 0) warn(`ui.enabled is on but ${dir} holds no build of the UI (run npm run build): ${prefix}/ui answers 404`);
  const root = `${prefix}/ui`;
  const notBuilt = (reply: FastifyReply) =>
    reply
      .code(404)
      .type('application/json')
      .send({ errors: [{ code: 'UNSUPPORTED', message: 'the UI is not built (npm run build)', detail: {} }] });
  app.route({ method: ['GET', 'HEAD'], url: root, exposeHeadRoute: false, handler: (_request, reply) => reply.redirect(`${root}/`, 301) });
  app.route({
    method: ['GET', 'HEAD'],
    url: `${root}/`,
    exposeHeadRoute: false,
    handler: (request, reply) => {
      const index = assets.get('index.html');
      return index ? send(request, reply, index) : notBuilt(reply);
    },
  });
  app.route({
    method: ['GET', 'HEAD'],
    url: `${root}/:file`,
    exposeHeadRoute: false,
    handler: (request, reply) => {
      // A fixed set of names read at start-up: no path from the URL ever reaches the file system.
      const asset = assets.get((request.params as { file: string }).file);
      if (!asset)
        return reply
          .code(404)
          .type('application/json')
          .send({ errors: [{ code: 'UNSUPPORTED', message: 'no such UI file', detail: {} }] });
      return send(request, reply, asset);
    },
  });
}
