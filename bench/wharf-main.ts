import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The compiled entry users run (npm start, the image); built here so a benchmark never measures stale code. */
/** The V8 flags npm start, npm run wharf/cluster and the image give Wharf's processes, plus WHARF_BENCH_NODE_FLAGS (e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`) to profile the processes measured. */
export const WHARF_NODE_FLAGS = ['--max-semi-space-size=4', ...(process.env.WHARF_BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean)];
export const WHARF_MAIN = fileURLToPath(new URL('../dist/services/cli/main.js', import.meta.url));
execFileSync(process.execPath, [fileURLToPath(new URL('../scripts/build-js.mjs', import.meta.url))], { stdio: 'inherit', env: { ...process.env, WHARF_BUILD_QUIET: '1' } });
