import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The compiled entry users run (npm start, the image); built here so a benchmark never measures stale code. */
/** The V8 flags npm start, npm run wharf/cluster and the image give Wharf's processes. */
export const WHARF_NODE_FLAGS = ['--max-semi-space-size=4'];
export const WHARF_MAIN = fileURLToPath(new URL('../dist/services/cli/main.js', import.meta.url));
execFileSync(process.execPath, [fileURLToPath(new URL('../scripts/build-js.mjs', import.meta.url))], { stdio: 'inherit', env: { ...process.env, WHARF_BUILD_QUIET: '1' } });
