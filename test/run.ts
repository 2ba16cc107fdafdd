/**
 * The test command: every suite in embedded mode, then the spec suites and the cluster suites
 * again in cluster mode (two API nodes on PostgreSQL, S3 and NATS). Cluster mode needs
 * WHARF_TEST_DATABASE_URL and WHARF_TEST_NATS_URL, or a Docker engine for testcontainers;
 * without them it is skipped with a message naming what is missing.
 */
import { execFileSync, spawn } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { dockerAvailable } from './helpers/services.js';

const SPEC_SUITES = ['push-pull', 'manifests', 'bad-input', 'skopeo', 'prefix-and-config', 'listings'];
/**
 * Spec suites run once more per auth scheme (embedded mode), behind a proxy that adds a user's
 * credentials: Basic against htpasswd, Bearer tokens from the built-in issuer for exactly the
 * scope each request needs. A representative subset, to keep the run short; the other spec suites
 * pass too (WHARF_TEST_AUTH=basic|bearer on node --test runs them so).
 */
const AUTH_SUITES = ['push-pull', 'manifests', 'skopeo'];

function runNodeTest(files: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=1', ...files], { stdio: 'inherit', env });
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)));
  });
}

async function clusterSkipReason(): Promise<string | undefined> {
  const missing: string[] = [];
  if (!process.env.WHARF_TEST_DATABASE_URL) missing.push('WHARF_TEST_DATABASE_URL (PostgreSQL)');
  if (!process.env.WHARF_TEST_NATS_URL) missing.push('WHARF_TEST_NATS_URL (NATS with JetStream)');
  if (missing.length === 0 || (await dockerAvailable())) return undefined;
  return `no ${missing.join(' and no ')}, and no Docker engine for testcontainers`;
}

// The processes the suites spawn run the compiled dist/, as users do: build it from this tree first.
execFileSync(process.execPath, ['scripts/build-js.mjs'], { stdio: 'inherit', env: { ...process.env, WHARF_BUILD_QUIET: '1' } });

const only = process.argv.slice(2);
const selected = (files: string[]) => (only.length ? files.filter((f) => only.some((o) => f.includes(o))) : files);
/** Every test file under `dir`, subfolders included (a suite may be split into a folder of files). */
async function testFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true });
  return entries
    .filter((f) => f.endsWith('.test.ts'))
    .map((f) => join(dir, f))
    .sort();
}
/** A suite is a file `test/<name>.test.ts` or a folder `test/<name>/` of them. */
const inSuite = (file: string, name: string) => file === `test/${name}.test.ts` || file.startsWith(`test/${name}/`);
// test/deploy/ builds images and runs containers: npm run test:deploy runs it, after npm test in CI.
const topLevel = (await testFiles('test')).filter((f) => !f.startsWith('test/cluster/') && !f.startsWith('test/deploy/'));
const clusterOnly = await testFiles('test/cluster');

const { WHARF_TEST_AUTH: _auth, ...baseEnv } = process.env;
let failed = false;
const embedded = selected(topLevel);
if (embedded.length) {
  console.log(`\n== embedded mode: ${embedded.length} suites ==`);
  failed = (await runNodeTest(embedded, { ...baseEnv, WHARF_TEST_MODE: 'embedded' })) !== 0 || failed;
}
const authFiles = selected(topLevel.filter((f) => AUTH_SUITES.some((s) => inSuite(f, s))));
for (const scheme of ['basic', 'bearer']) {
  if (!authFiles.length) break;
  console.log(`\n== embedded mode with auth on (${scheme}): ${authFiles.length} suites ==`);
  failed = (await runNodeTest(authFiles, { ...baseEnv, WHARF_TEST_MODE: 'embedded', WHARF_TEST_AUTH: scheme })) !== 0 || failed;
}
const clusterFiles = selected([...topLevel.filter((f) => SPEC_SUITES.some((s) => inSuite(f, s))), ...clusterOnly]);
if (clusterFiles.length) {
  const skip = await clusterSkipReason();
  if (skip) {
    console.log(`\n== cluster mode: SKIPPED: ${skip} ==`);
  } else {
    console.log(`\n== cluster mode: ${clusterFiles.length} suites ==`);
    failed = (await runNodeTest(clusterFiles, { ...baseEnv, WHARF_TEST_MODE: 'cluster' })) !== 0 || failed;
  }
}
process.exit(failed ? 1 : 0);
