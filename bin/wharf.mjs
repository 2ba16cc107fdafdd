#!/usr/bin/env node
// The `wharf` command (package.json "bin"; on PATH in the image): runs the compiled CLI under
// dist/, which `npm ci` builds (and `npm start` / `npm run wharf` refresh).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const main = new URL('../dist/services/cli/main.js', import.meta.url);
if (!existsSync(fileURLToPath(main))) {
  console.error('wharf: dist/ is missing; run `npm ci` (or `npm run build`) in the Wharf checkout first');
  process.exit(2);
}
await import(main.href);
