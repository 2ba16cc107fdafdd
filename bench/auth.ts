// What access control costs per request: manifest GETs against three Wharf processes, auth off,
// htpasswd (Basic, bcrypt cost 10) and token (Bearer, RS256 and ES256 from the built-in issuer).
// Usage: node --import tsx bench/auth.ts [--requests N]   (ports 5600-5603)
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { readFileSync } from 'node:fs';
import autocannon from 'autocannon';
import { startWharfProcess, type RunningRegistry } from './registries.js';

const REQUESTS = Number(process.argv[process.argv.indexOf('--requests') + 1]) || 20_000;
const WARMUP = 2_000;
const CONNECTIONS = 16;

/** User + system CPU seconds a process has used, from /proc/<pid>/stat (clock ticks of 1/100 s). */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}
const REPO = 'bench/app';
const basicHeader = `Basic ${Buffer.from('bench:bench-password').toString('base64')}`;

const digest = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

async function seed(base: string, authorization: string | undefined): Promise<string> {
  const headers: Record<string, string> = authorization ? { authorization } : {};
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
  const layer = randomBytes(4096);
  for (const blob of [config, layer]) {
    const res = await fetch(`${base}/v2/${REPO}/blobs/uploads/?digest=${digest(blob)}`, { method: 'POST', headers, body: blob });
    if (res.status !== 201) throw new Error(`seed blob: ${res.status} ${await res.text()}`);
  }
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: digest(config), size: config.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: digest(layer), size: layer.length }],
  });
  const res = await fetch(`${base}/v2/${REPO}/manifests/v1`, {
    method: 'PUT',
    headers: { ...headers, 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
    body: manifest,
  });
  if (res.status !== 201) throw new Error(`seed manifest: ${res.status} ${await res.text()}`);
  return `${base}/v2/${REPO}/manifests/v1`;
}

async function token(base: string): Promise<string> {
  const res = await fetch(`${base}/auth/token?service=wharf&scope=repository:${REPO}:pull,push`, { headers: { authorization: basicHeader } });
  return `Bearer ${((await res.json()) as { token: string }).token}`;
}

const dir = await mkdtemp(join(tmpdir(), 'wharf-bench-auth-'));
const running: RunningRegistry[] = [];
try {
  await writeFile(join(dir, 'htpasswd'), `bench:${bcrypt.hashSync('bench-password', 10)}\n`);
  await writeFile(join(dir, 'rsa.pem'), generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
  await writeFile(join(dir, 'ec.pem'), generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
  const htpasswd = join(dir, 'htpasswd');
  const tokenEnv = (key: string) => ({ WHARF_AUTH_MODE: 'token', WHARF_AUTH_HTPASSWD_PATH: htpasswd, WHARF_AUTH_TOKEN_SIGNINGKEY: join(dir, key) });
  const none = await startWharfProcess(5600);
  running.push(none);
  const basic = await startWharfProcess(5601, { WHARF_AUTH_MODE: 'htpasswd', WHARF_AUTH_HTPASSWD_PATH: htpasswd });
  running.push(basic);
  const rsa = await startWharfProcess(5602, tokenEnv('rsa.pem'));
  running.push(rsa);
  const ec = await startWharfProcess(5603, tokenEnv('ec.pem'));
  running.push(ec);

  const cases: Array<[string, RunningRegistry, string | undefined]> = [
    ['auth off', none, undefined],
    ['htpasswd (Basic; bcrypt once, then remembered)', basic, basicHeader],
    ['token RS256 (2048-bit)', rsa, await token(rsa.base)],
    ['token ES256', ec, await token(ec.base)],
  ];
  console.log(`manifest GET by tag, ${REQUESTS} requests per case over ${CONNECTIONS} connections, after ${WARMUP} to warm up.`);
  console.log("CPU is the registry process's own (user + system, from /proc), so it holds on a busy machine; req/s does not.\n");
  console.log('| auth | CPU µs per request | req/s | non-2xx |');
  console.log('|---|---|---|---|');
  for (const [name, registry, authorization] of cases) {
    const url = await seed(registry.base, authorization);
    const headers: Record<string, string> = { accept: 'application/vnd.oci.image.manifest.v1+json', ...(authorization ? { authorization } : {}) };
    await autocannon({ url, headers, connections: CONNECTIONS, amount: WARMUP });
    const before = cpuSeconds(registry.pid);
    const started = performance.now();
    const result = await autocannon({ url, headers, connections: CONNECTIONS, amount: REQUESTS });
    const cpu = cpuSeconds(registry.pid) - before;
    const rps = REQUESTS / ((performance.now() - started) / 1000);
    console.log(`| ${name} | ${((cpu / REQUESTS) * 1e6).toFixed(0)} | ${rps.toFixed(0)} | ${result.non2xx} |`);
  }
} finally {
  for (const r of running) await r.stop().catch(() => {});
  await rm(dir, { recursive: true, force: true });
}
