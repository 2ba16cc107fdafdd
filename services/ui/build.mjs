// Bundles the browser UI for dist/ui: src/main.ts (plain TypeScript and the DOM, no framework)
// into one minified app.js, beside static/index.html and static/app.css. Called by
// scripts/build-js.mjs, so `npm ci`, `npm start` and `npm test` build it; nothing is fetched at
// run time. Returns [path, contents] pairs for the caller to write.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));

export async function uiOutputs(outdir) {
  const result = await build({
    entryPoints: [join(here, 'src', 'main.ts')],
    bundle: true,
    minify: true,
    format: 'iife',
    platform: 'browser',
    target: ['chrome100', 'firefox100', 'safari15'],
    outfile: join(outdir, 'app.js'),
    write: false,
    logLevel: 'warning',
    legalComments: 'none',
  });
  const out = result.outputFiles.map((o) => [o.path, Buffer.from(o.contents)]);
  for (const name of readdirSync(join(here, 'static'))) out.push([join(outdir, name), readFileSync(join(here, 'static', name))]);
  return out;
}
