// npm's install script: builds the SHA-256 addon (native/sha256.c, binding.gyp, both in libs/hashing)
// into libs/hashing/build/ with the node-gyp that ships with npm. A failed build never fails the
// install: Wharf then hashes with hash-wasm.
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..'); // libs/hashing
const addon = join(root, 'build', 'Release', 'wharf_sha256.node');

function nodeGyp() {
  const candidates = [process.env.npm_config_node_gyp];
  if (process.env.npm_execpath) candidates.push(join(dirname(process.env.npm_execpath), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  candidates.push(join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  return candidates.find((c) => c && existsSync(c));
}

function skip(reason) {
  rmSync(addon, { force: true }); // never leave an addon from an older build behind
  console.warn(`wharf: native SHA-256 addon not built (${reason}); uploads will be hashed with hash-wasm`);
  process.exit(0);
}

if (process.env.WHARF_SKIP_NATIVE === '1') skip('WHARF_SKIP_NATIVE=1');
const gyp = nodeGyp();
if (!gyp) skip('node-gyp not found');
const args = [gyp, 'rebuild'];
const env = { ...process.env };
if (!env.npm_config_nodedir) delete env.npm_config_nodedir; // an empty one overrides --nodedir
// Use the headers installed next to this node (Debian: /usr/include/node) instead of downloading them.
const prefix = join(dirname(process.execPath), '..');
if (!process.env.npm_config_nodedir && existsSync(join(prefix, 'include', 'node', 'node_api.h'))) args.push(`--nodedir=${prefix}`);
const run = spawnSync(process.execPath, args, { cwd: root, env, encoding: 'utf8', timeout: 180_000 });
if (run.status !== 0) {
  const tail = `${run.stdout ?? ''}${run.stderr ?? ''}`.trim().split('\n').slice(-5).join('\n');
  skip(`node-gyp failed${run.error ? `: ${run.error.message}` : ''}\n${tail}`);
}
try {
  createRequire(import.meta.url)(addon);
} catch (err) {
  skip(`it does not load: ${String(err.message).split('\n')[0]}`);
}
console.log('wharf: native SHA-256 addon built');
