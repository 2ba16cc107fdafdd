// What access control costs per request: manifest GETs against three Wharf processes, auth off,
// htpasswd (Basic, bcrypt cost 10) and token (Bearer, RS256 and ES256 from the built-in issuer).
// Usage: node --import tsx bench/auth.ts [--seconds N]   (ports 5600-5603)
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { compare, type LoadResult } from './load.js';
import { startWharfProcess, type RunningRegistry } from './registries.js';

const seconds = Number(process.argv[process.argv.indexOf('--seconds') + 1]) || 8;
const CONNECTIONS = 32;
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
  const res = await fetch(`${base}/v2/${REPO}/manifests/v1`, { method: 'PUT', headers: { ...headers, 'content-type': 'application/vnd.oci.image.manifest.v1+json' }, body: manifest });
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

  const noneUrl = await seed(none.base, undefined);
  const rows: Array<[string, LoadResult, LoadResult]> = [];
  const opts = (authorization: string) => ({ method: 'GET' as const, headers: { authorization, accept: 'application/vnd.oci.image.manifest.v1+json' }, connections: CONNECTIONS, seconds, warmupSeconds: 2 });
  rows.push(['htpasswd (Basic, cached after the first bcrypt)', ...(await compare(noneUrl, await seed(basic.base, basicHeader), opts(basicHeader)))]);
  const rsaToken = await token(rsa.base);
  rows.push(['token RS256 (2048-bit)', ...(await compare(noneUrl, await seed(rsa.base, rsaToken), opts(rsaToken)))]);
  const ecToken = await token(ec.base);
  rows.push(['token ES256', ...(await compare(noneUrl, await seed(ec.base, ecToken), opts(ecToken)))]);

  console.log(`manifest GET by tag, ${CONNECTIONS} connections, ${seconds} s per side (A B B A halves)\n`);
  console.log('| auth | req/s auth off | req/s auth on | ratio | p50 ms off / on | p99 ms off / on | non-2xx |');
  console.log('|---|---|---|---|---|---|---|');
  for (const [name, off, on] of rows) {
    console.log(
      `| ${name} | ${off.reqPerSec.toFixed(0)} | ${on.reqPerSec.toFixed(0)} | ${(on.reqPerSec / off.reqPerSec).toFixed(2)} | ${off.p50} / ${on.p50} | ${off.p99} / ${on.p99} | ${off.non2xx + on.non2xx} |`,
    );
  }
} finally {
  for (const r of running) await r.stop().catch(() => {});
  await rm(dir, { recursive: true, force: true });
}
