/**
 * A stand-in for the Kubernetes pods (no cluster runs here): the image the manifests name, run
 * in podman the way the kubelet would run deploy/kubernetes/ — the migration Job's and the API
 * Deployment's args and env (Secrets resolved), the ConfigMap file mounted read-only at
 * WHARF_CONFIG, the token-keys Secret's files, the pod's uid/gid, a read-only root filesystem,
 * no capabilities, no privilege escalation, /tmp as the emptyDir — against PostgreSQL, NATS and
 * S3 stand-ins on a podman network. Only the service addresses are replaced (their cluster DNS
 * names do not exist here). The probes are then asked, and the RSS measured, on the pod's port.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile, mkdir, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { buildImage, writeOciLayout } from '../helpers/oci-layout.js';
import { skopeoSandbox } from '../helpers/skopeo-sandbox.js';
import { eventually } from '../helpers/wait.js';
import { ROOT, commandExists, ensureImages, podman, rssMiB, sh } from './podman.js';

/* eslint-disable @typescript-eslint/no-explicit-any */
const PORT = 23600;
const NET = 'wharf-k8s-stand-in';
const P = 'wharf-k8s-';
const missing = ['podman', 'skopeo', 'mmdebstrap'].filter((c) => !commandExists(c));

async function manifests(): Promise<any[]> {
  const docs: any[] = [];
  for (const f of ['00-config.yaml', '01-secrets.yaml', '02-migrate-job.yaml', '03-api.yaml']) {
    for (const d of parseAllDocuments(await readFile(join(ROOT, 'deploy/kubernetes', f), 'utf8'))) if (d.toJS()) docs.push(d.toJS());
  }
  return docs;
}

const ADDRESSES: Record<string, string> = {
  WHARF_DATABASE_URL: `postgres://wharf:wharf@${P}postgres:5432/wharf`,
  WHARF_S3_ACCESSKEYID: 'wharf',
  WHARF_S3_SECRETACCESSKEY: 'wharf-secret',
  WHARF_S3_ENDPOINT: `http://${P}minio:9000`,
  WHARF_S3_FORCEPATHSTYLE: 'true',
  WHARF_NATS_URL: `nats://${P}nats:4222`,
};

describe('the API image as the Kubernetes manifests run it', { skip: missing.length ? `missing: ${missing.join(', ')}` : false, timeout: 3_600_000 }, () => {
  let tmp: string;
  let docs: any[];
  let password = '';
  let skopeoEnv: NodeJS.ProcessEnv;

  const find = (kind: string, name: string) => docs.find((d) => d.kind === kind && d.metadata.name === name);

  /** podman run arguments for one container of a pod spec: env, mounts, security context, as the kubelet would. */
  function podArgs(podSpec: any, c: any, name: string): string[] {
    const args = ['run', '-d', '--name', name, '--network', NET];
    const sc = { ...podSpec.securityContext, ...c.securityContext };
    args.push('--user', `${sc.runAsUser}:${sc.runAsGroup}`);
    if (sc.readOnlyRootFilesystem) args.push('--read-only');
    if (sc.allowPrivilegeEscalation === false) args.push('--security-opt', 'no-new-privileges');
    for (const cap of sc.capabilities?.drop ?? []) args.push('--cap-drop', cap);
    for (const e of c.env ?? []) {
      let value: string;
      if (e.value !== undefined) value = String(e.value);
      else if (e.valueFrom?.secretKeyRef) value = String(find('Secret', e.valueFrom.secretKeyRef.name).stringData[e.valueFrom.secretKeyRef.key]);
      else if (e.valueFrom?.fieldRef?.fieldPath === 'metadata.name') value = name;
      else throw new Error(`env ${e.name}`);
      args.push('--env', `${e.name}=${ADDRESSES[e.name] ?? value}`);
    }
    for (const [k, v] of Object.entries(ADDRESSES)) if (!(c.env ?? []).some((e: any) => e.name === k)) args.push('--env', `${k}=${v}`);
    for (const m of c.volumeMounts ?? []) {
      const volume = podSpec.volumes.find((v: any) => v.name === m.name);
      if (volume.emptyDir) args.push('--tmpfs', `${m.mountPath}:rw,size=64m,mode=1777`);
      else if (volume.configMap) args.push('-v', `${join(tmp, 'configmap', volume.configMap.name)}:${m.mountPath}:ro`);
      else if (volume.secret && volume.secret.secretName === 'wharf-token-keys') args.push('-v', `${join(tmp, 'tokens')}:${m.mountPath}:ro`);
      else if (volume.secret?.optional)
        continue; // optional and absent, as in the base
      else throw new Error(`volume ${m.name}`);
    }
    for (const p of c.ports ?? []) args.push('-p', `127.0.0.1:${PORT}:${p.containerPort}`);
    return [...args, find('Deployment', 'wharf-api').spec.template.spec.containers[0].image, ...(c.args ?? [])];
  }

  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'wharf-k8s-pod-'));
    ({ env: skopeoEnv } = await skopeoSandbox('wharf-k8s-skopeo-'));
    docs = await manifests();
    await ensureImages();
    for (const c of ['api', 'migrate', 'postgres', 'nats', 'minio']) await podman('rm', '-f', `${P}${c}`).catch(() => '');
    await podman('network', 'rm', '-f', NET).catch(() => '');
    await podman('network', 'create', NET);
    // The ConfigMap as its files, and the token-keys Secret made by the documented command.
    const cm = find('ConfigMap', 'wharf-config');
    await mkdir(join(tmp, 'configmap', 'wharf-config'), { recursive: true });
    for (const [file, text] of Object.entries(cm.data as Record<string, string>)) await writeFile(join(tmp, 'configmap', 'wharf-config', file), text);
    await chmod(tmp, 0o755);
    const keys = await sh('node', [join(ROOT, 'bin/wharf.mjs'), 'keys', join(tmp, 'tokens'), 'admin']);
    password = /password: (\S+)/.exec(keys)![1]!;
    await sh('chown', ['-R', '1000:1000', join(tmp, 'tokens')]);
    await podman(
      'run',
      '-d',
      '--name',
      `${P}postgres`,
      '--network',
      NET,
      '-e',
      'POSTGRES_USER=wharf',
      '-e',
      'POSTGRES_PASSWORD=wharf',
      '-e',
      'POSTGRES_DB=wharf',
      'postgres:15.20-bookworm',
    );
    await podman('run', '-d', '--name', `${P}nats`, '--network', NET, 'nats:2.9.25-alpine', '-js');
    await podman(
      'run',
      '-d',
      '--name',
      `${P}minio`,
      '--network',
      NET,
      '-e',
      'MINIO_ROOT_USER=wharf',
      '-e',
      'MINIO_ROOT_PASSWORD=wharf-secret',
      'minio/minio:RELEASE.2025-09-07T16-13-09Z',
      'server',
      '/data',
    );
    await eventually(() => podman('exec', `${P}postgres`, 'pg_isready', '-U', 'wharf', '-d', 'wharf'), 600_000, 1000);
    await eventually(() => podman('exec', `${P}minio`, 'mc', 'ready', 'local'), 600_000, 1000);
    await podman('exec', `${P}minio`, 'mc', 'mb', '--ignore-existing', 'local/wharf');
  });

  after(async () => {
    for (const c of ['api', 'migrate', 'postgres', 'nats', 'minio']) await podman('rm', '-f', `${P}${c}`).catch(() => '');
    await podman('network', 'rm', '-f', NET).catch(() => '');
    await rm(tmp, { recursive: true, force: true });
  });

  it('runs the migration Job, then an API pod that turns ready on its probes, with token auth', async () => {
    const job = find('Job', 'wharf-migrate').spec.template.spec;
    await podman(...podArgs(job, job.containers[0], `${P}migrate`));
    const code = (await podman('wait', `${P}migrate`)).trim();
    assert.equal(code, '0', await podman('logs', `${P}migrate`));

    const pod = find('Deployment', 'wharf-api').spec.template.spec;
    const c = pod.containers[0];
    await podman(...podArgs(pod, c, `${P}api`));
    const probe = (p: any) =>
      fetch(`http://127.0.0.1:${PORT}${p.httpGet.path}`)
        .then((r) => r.status)
        .catch(() => 0);
    await eventually(async () => assert.equal(await probe(c.startupProbe), 200, 'startup probe'), 600_000, 1000);
    await eventually(async () => assert.equal(await probe(c.readinessProbe), 200, 'readiness probe'), 600_000, 1000);
    assert.equal(await probe(c.livenessProbe), 200, 'liveness probe');
    const challenge = (await fetch(`http://127.0.0.1:${PORT}/v2/`)).headers.get('www-authenticate');
    assert.match(challenge ?? '', /^Bearer realm="http:\/\/127\.0\.0\.1:23600\/auth\/token"/);
    // Behind an Ingress (a trusted private address would send these): the realm is the public one.
    assert.equal(JSON.parse(await podman('inspect', `${P}api`))[0].Config.User, `${pod.securityContext.runAsUser}:${pod.securityContext.runAsGroup}`);
    await assert.rejects(podman('exec', `${P}api`, 'touch', '/app/x'), /Read-only file system/, 'the root filesystem is read-only');
  });

  it('takes a push with the Secret user, and its RSS stays under the memory request', async () => {
    const dir = join(tmp, 'layout');
    await writeOciLayout(dir, { v1: buildImage({ layers: 3 }) });
    await sh('skopeo', ['--insecure-policy', 'copy', '--dest-tls-verify=false', '--dest-creds', `admin:${password}`, `oci:${dir}:v1`, `docker://127.0.0.1:${PORT}/k8s/app:v1`], {
      env: skopeoEnv,
    });
    const rss = await rssMiB(`${P}api`);
    const request = find('Deployment', 'wharf-api').spec.template.spec.containers[0].resources.requests.memory as string;
    console.log(`rss: API pod stand-in after a push: ${rss} MiB (memory request ${request})`);
    assert.ok(rss < Number(request.replace(/Mi$/, '')), `${rss} MiB under ${request}`);
  });
});
