// Transpiles services/ and libs/ to plain ESM JavaScript under dist/ (same layout), so Wharf's
// processes run with bare `node` instead of `--import tsx`, whose module-loader thread costs
// ~39 MiB of RSS per process. Types are not checked here (`npm run typecheck` does that).
// Runs from npm ci (install script) and before npm start / npm run wharf / npm run cluster;
// a file is rewritten only when its content changed, by a rename, so running processes never
// read a half-written module.
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');
const trees = ['services', 'libs'].filter((d) => existsSync(join(root, d)));
if (trees.length === 0) process.exit(0); // a Docker layer with only package.json: built after COPY

// The addon's build script and node-gyp's output (the addon, objects, makefiles) stay where they are.
const notModules = ['build', 'scripts'].map((d) => join(root, 'libs', 'hashing', d) + '/');
const sources = trees
  .flatMap((d) => readdirSync(join(root, d), { recursive: true }).map((f) => join(root, d, f)))
  .filter((f) => !notModules.some((d) => f.startsWith(d)));
const entryPoints = sources.filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'));
const copies = sources.filter((f) => f.endsWith('.mjs') || f.endsWith('.cjs') || f.endsWith('.json'));

const result = await build({
  entryPoints,
  outdir: dist,
  outbase: root,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  sourcemap: 'linked',
  write: false,
  logLevel: 'warning',
});

const wanted = new Map(result.outputFiles.map((o) => [o.path, Buffer.from(o.contents)]));
for (const f of copies) wanted.set(join(dist, relative(root, f)), readFileSync(f));

let written = 0;
for (const [path, contents] of wanted) {
  if (existsSync(path) && readFileSync(path).equals(contents)) continue;
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, contents);
  renameSync(tmp, path);
  written++;
}
// Modules whose source is gone must not linger: an import of a deleted file should fail.
for (const d of trees) {
  const out = join(dist, d);
  if (!existsSync(out)) continue;
  for (const f of readdirSync(out, { recursive: true })) {
    const path = join(out, f);
    if (!wanted.has(path) && statSync(path).isFile()) rmSync(path, { force: true });
  }
}
if (written > 0 && process.env.WHARF_BUILD_QUIET !== '1') console.error(`wharf: ${written} file(s) of dist/ rebuilt`);
