/**
 * No cluster runs where these tests run, so deploy/kubernetes/ is checked as far as it can be:
 * every object against the OpenAPI schema of a current Kubernetes release (the kubernetes-models
 * package: validators generated from Kubernetes' own OpenAPI document, resource.k8s.io/v1
 * included, i.e. 1.34 or later), and the ports, probe paths, commands, variables, config keys,
 * Secret references, selectors and security settings against what the code reads.
 * test/deploy/kubernetes-pod.test.ts runs the API image with these env/args in podman.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { loadConfig, splitAddr, type Config } from '../libs/config/index.js';

/* eslint-disable @typescript-eslint/no-explicit-any */
type Doc = { apiVersion: string; kind: string; metadata: { name: string; labels?: Record<string, string> }; [k: string]: any };

const root = new URL('../deploy/kubernetes/', import.meta.url);
const exampleDir = new URL('examples/existing-services/', root);

async function load(dir: URL): Promise<Array<Doc & { file: string }>> {
  const files = (await readdir(dir)).filter((f) => f.endsWith('.yaml')).sort();
  const docs: Array<Doc & { file: string }> = [];
  for (const file of files) {
    for (const doc of parseAllDocuments(await readFile(new URL(file, dir), 'utf8'))) {
      assert.deepEqual(doc.errors, [], `${file} parses`);
      const value = doc.toJS() as Doc | null;
      if (value) docs.push({ ...value, file });
    }
  }
  return docs;
}

const base = await load(root);
const example = await load(exampleDir);
const main = await readFile(new URL('../services/cli/main.ts', import.meta.url), 'utf8');
const dockerfile = await readFile(new URL('../Dockerfile', import.meta.url), 'utf8');
const tmp = await mkdtemp(join(tmpdir(), 'wharf-k8s-'));
after(() => rm(tmp, { recursive: true, force: true }));

const REQUIRED: Record<string, string[]> = {
  ConfigMap: ['data'],
  Secret: ['stringData'],
  ServiceAccount: [],
  Job: ['spec.template.spec.containers'],
  Deployment: ['spec.replicas', 'spec.selector.matchLabels', 'spec.template.metadata.labels', 'spec.template.spec.containers'],
  Service: ['spec'],
  PodDisruptionBudget: ['spec.selector.matchLabels'],
  EndpointSlice: ['endpoints', 'addressType'],
};

function at(obj: any, path: string): any {
  return path.split('.').reduce((o, k) => (o == null ? undefined : o[k]), obj);
}

function find(docs: Doc[], kind: string, name: string): Doc {
  const doc = docs.find((d) => d.kind === kind && d.metadata.name === name);
  assert.ok(doc, `${kind} ${name}`);
  return doc;
}

/** The config a container would load: the mounted ConfigMap file plus its env, Secrets resolved. */
async function containerConfig(docs: Doc[], podSpec: any, container: any): Promise<Config> {
  const env: Record<string, string> = {};
  for (const e of container.env ?? []) {
    if (e.value !== undefined) env[e.name] = String(e.value);
    else if (e.valueFrom?.secretKeyRef) {
      const { name, key } = e.valueFrom.secretKeyRef;
      const secret = find(docs, 'Secret', name);
      assert.ok(key in secret.stringData, `Secret ${name} has key ${key}`);
      env[e.name] = String(secret.stringData[key]);
    } else if (e.valueFrom?.fieldRef) env[e.name] = 'pod-name';
    else assert.fail(`env ${e.name}: value or a known valueFrom`);
  }
  const configPath = env.WHARF_CONFIG;
  assert.ok(configPath, `${container.name} sets WHARF_CONFIG`);
  const mount = (container.volumeMounts ?? []).find((m: any) => configPath.startsWith(`${m.mountPath}/`));
  assert.ok(mount, `${container.name}: ${configPath} is on a mounted volume`);
  const volume = podSpec.volumes.find((v: any) => v.name === mount.name);
  assert.ok(volume?.configMap, `${container.name}: ${configPath} comes from a ConfigMap`);
  const configMap = find(docs, 'ConfigMap', volume.configMap.name);
  const fileName = configPath.slice(mount.mountPath.length + 1);
  assert.ok(configMap.data[fileName], `ConfigMap ${configMap.metadata.name} has ${fileName}`);
  const file = join(tmp, `${configMap.metadata.name}-${fileName}`);
  await writeFile(file, configMap.data[fileName]);
  delete env.WHARF_CONFIG;
  // Throws on an unknown key in the file or an unknown or mistyped WHARF_* variable.
  return loadConfig({ file, env });
}

function portOf(container: any, ref: string | number): number {
  if (typeof ref === 'number') return ref;
  const port = container.ports?.find((p: any) => p.name === ref);
  assert.ok(port, `${container.name} has a port named ${ref}`);
  return port.containerPort;
}

function podsOf(docs: Doc[]): Array<{ doc: Doc; pod: any }> {
  return docs.filter((d) => d.kind === 'Deployment' || d.kind === 'Job').map((doc) => ({ doc, pod: doc.spec.template.spec }));
}

/** The kubernetes-models class for an object's apiVersion and kind (core: v1/Kind, else group/version/Kind). */
async function schemaFor(doc: Doc): Promise<{ validate(): void }> {
  const mod = (await import(`kubernetes-models/${doc.apiVersion}/${doc.kind}`)) as Record<string, new (data: unknown) => { validate(): void }>;
  const Model = mod[doc.kind];
  assert.ok(Model, `kubernetes-models has ${doc.apiVersion} ${doc.kind}`);
  const { file: _file, ...object } = doc as Doc & { file?: string };
  return new Model(object);
}

describe('deploy/kubernetes', () => {
  it('validates every object against the Kubernetes OpenAPI schema', async () => {
    for (const d of [...base, ...example]) {
      const model = await schemaFor(d);
      assert.doesNotThrow(() => model.validate(), `${d.file}: ${d.kind}/${d.metadata.name} is valid`);
    }
  });

  it('the schema check can fail: a mistyped field is refused', async () => {
    const api = structuredClone(find(base, 'Deployment', 'wharf-api'));
    api.spec.replicas = 'three';
    const model = await schemaFor(api);
    assert.throws(() => model.validate(), /replicas must be integer/);
  });

  it('runs every container non-root, read-only, without privileges, with the runtime seccomp profile', () => {
    for (const { doc, pod } of podsOf(base)) {
      assert.equal(pod.securityContext?.runAsNonRoot, true, `${doc.metadata.name}: runAsNonRoot`);
      assert.ok(pod.securityContext?.runAsUser > 0, `${doc.metadata.name}: a non-zero uid`);
      assert.equal(pod.securityContext?.seccompProfile?.type, 'RuntimeDefault', `${doc.metadata.name}: seccomp`);
      for (const c of pod.containers) {
        assert.equal(c.securityContext?.readOnlyRootFilesystem, true, `${doc.metadata.name}: read-only root filesystem`);
        assert.equal(c.securityContext?.allowPrivilegeEscalation, false, `${doc.metadata.name}: no privilege escalation`);
        assert.deepEqual(c.securityContext?.capabilities?.drop, ['ALL'], `${doc.metadata.name}: no capabilities`);
        assert.ok(
          (c.volumeMounts ?? []).some((m: any) => m.mountPath === '/tmp'),
          `${doc.metadata.name}: a writable /tmp`,
        );
      }
    }
  });

  it('asks for memory covering the measured RSS, and rolls out without dropping below N-1 ready API pods', () => {
    const mib = (q: string) => (q.endsWith('Gi') ? Number(q.slice(0, -2)) * 1024 : Number(q.replace(/Mi$/, '')));
    const api = find(base, 'Deployment', 'wharf-api');
    const c = api.spec.template.spec.containers[0];
    // bench/README.md: an API node's VmRSS peaks at 188 MiB (reads, push/pull, 512 MiB-2 GiB blobs).
    assert.ok(mib(c.resources.requests.memory) >= 188, 'the request covers the measured peak');
    assert.ok(mib(c.resources.limits.memory) >= 2 * 188, 'the limit leaves room for concurrent uploads');
    const n = api.spec.replicas;
    const { maxUnavailable, maxSurge } = api.spec.strategy.rollingUpdate;
    assert.ok(maxUnavailable <= 1 && maxSurge >= 1, 'a rollout keeps at least N-1 ready');
    const pdb = find(base, 'PodDisruptionBudget', 'wharf-api');
    assert.equal(pdb.spec.minAvailable, n - 1, 'the PDB keeps N-1 during drains');
  });

  it('parses, and every object has apiVersion, kind, a name and what its kind requires', () => {
    for (const docs of [base, example]) {
      for (const d of docs) {
        assert.ok(d.apiVersion && d.kind && d.metadata?.name, `${d.file}: apiVersion, kind, metadata.name`);
        assert.ok(REQUIRED[d.kind], `${d.file}: ${d.kind} is a kind this test knows`);
        for (const path of REQUIRED[d.kind]!) assert.notEqual(at(d, path), undefined, `${d.file} ${d.kind}/${d.metadata.name}: ${path}`);
      }
    }
  });

  it('has three API replicas, a Service, a PodDisruptionBudget, a worker Deployment and a migration Job', () => {
    const api = find(base, 'Deployment', 'wharf-api');
    assert.equal(api.spec.replicas, 3);
    assert.equal(api.spec.strategy.rollingUpdate.maxUnavailable, 0, 'a rollout never drops below three ready replicas');
    const podLabels = api.spec.template.metadata.labels;
    for (const [k, v] of Object.entries(api.spec.selector.matchLabels)) assert.equal(podLabels[k], v, 'Deployment selector matches its pods');
    const service = find(base, 'Service', 'wharf');
    for (const [k, v] of Object.entries(service.spec.selector)) assert.equal(podLabels[k], v, 'Service selects the API pods');
    const pdb = find(base, 'PodDisruptionBudget', 'wharf-api');
    for (const [k, v] of Object.entries(pdb.spec.selector.matchLabels)) assert.equal(podLabels[k], v, 'PDB covers the API pods');
    assert.ok(pdb.spec.minAvailable >= 2 && pdb.spec.minAvailable < api.spec.replicas, 'PDB lets a drain proceed but keeps two');
    const worker = find(base, 'Deployment', 'wharf-worker');
    assert.ok(worker.spec.replicas >= 1);
    const workerLabels = worker.spec.template.metadata.labels;
    assert.ok(
      Object.entries(service.spec.selector).some(([k, v]) => workerLabels[k] !== v),
      'the Service does not send registry traffic to workers',
    );
    find(base, 'Job', 'wharf-migrate');
  });

  it('runs the image with wharf commands that exist: serve, worker, migrate', () => {
    assert.match(dockerfile, /ENTRYPOINT \["wharf"\]/);
    const expected: Record<string, string> = { 'wharf-api': 'serve', 'wharf-worker': 'worker', 'wharf-migrate': 'migrate' };
    for (const { doc, pod } of podsOf(base)) {
      for (const c of pod.containers) {
        assert.equal(c.command, undefined, `${doc.metadata.name}: keeps the image's entrypoint`);
        assert.equal(c.args[0], expected[doc.metadata.name], doc.metadata.name);
        assert.ok(main.includes(`case '${c.args[0]}':`), `wharf ${c.args[0]} exists`);
      }
    }
  });

  it('gives every container a configuration Wharf accepts, on the cluster drivers, with requests and limits', async () => {
    for (const docs of [base, [...example, ...base.filter((d) => !example.some((e) => e.kind === d.kind && e.metadata.name === d.metadata.name))]]) {
      for (const { doc, pod } of podsOf(docs)) {
        for (const c of pod.containers) {
          const config = await containerConfig(docs, pod, c);
          assert.notEqual(config['database.url'], '', `${doc.metadata.name}: database.url`);
          if (doc.kind === 'Deployment') {
            assert.equal(config['storage.driver'], 's3', doc.metadata.name);
            assert.match(config['nats.url'], /^nats:\/\//, doc.metadata.name);
          }
          for (const kind of ['requests', 'limits']) for (const r of ['cpu', 'memory']) assert.ok(c.resources?.[kind]?.[r], `${doc.metadata.name}: resources.${kind}.${r}`);
          for (const m of c.volumeMounts ?? [])
            assert.ok(
              pod.volumes.some((v: any) => v.name === m.name),
              `${doc.metadata.name}: volume ${m.name}`,
            );
          for (const v of pod.volumes ?? []) {
            if (v.secret && !v.secret.optional) find(docs, 'Secret', v.secret.secretName);
            if (v.configMap) find(docs, 'ConfigMap', v.configMap.name);
          }
          if (pod.serviceAccountName) find(docs, 'ServiceAccount', pod.serviceAccountName);
        }
      }
    }
  });

  it('probes /readyz and /healthz on the port each process listens on, and drains within the grace period', async () => {
    const api = find(base, 'Deployment', 'wharf-api');
    const pod = api.spec.template.spec;
    const c = pod.containers[0];
    const config = await containerConfig(base, pod, c);
    const { port } = splitAddr(config['http.addr']);
    const prefix = config['http.prefix'];
    assert.equal(c.readinessProbe.httpGet.path, `${prefix}/readyz`);
    assert.equal(c.livenessProbe.httpGet.path, `${prefix}/healthz`, 'liveness never depends on PostgreSQL, S3 or NATS');
    for (const probe of [c.readinessProbe, c.livenessProbe, c.startupProbe].filter(Boolean)) assert.equal(portOf(c, probe.httpGet.port), port, 'probe port is http.addr');
    const service = find(base, 'Service', 'wharf');
    for (const p of service.spec.ports) assert.equal(portOf(c, p.targetPort), port, 'Service targets http.addr');
    assert.equal(api.spec.template.metadata.annotations['prometheus.io/port'], String(port));
    assert.equal(api.spec.template.metadata.annotations['prometheus.io/path'], `${prefix}/metrics`);
    const preStop = Number(c.lifecycle?.preStop?.exec?.command?.at(-1) ?? 0);
    assert.ok(pod.terminationGracePeriodSeconds > preStop + config['http.shutdowntimeout'] + 5, 'grace period covers preStop, the request deadline and the relay flush');

    const worker = find(base, 'Deployment', 'wharf-worker');
    const wpod = worker.spec.template.spec;
    const wc = wpod.containers[0];
    const wconfig = await containerConfig(base, wpod, wc);
    assert.notEqual(wconfig['worker.httpaddr'], '', 'the worker serves its probes');
    const wport = splitAddr(wconfig['worker.httpaddr']).port;
    assert.equal(wc.readinessProbe.httpGet.path, '/readyz');
    assert.equal(wc.livenessProbe.httpGet.path, '/healthz');
    for (const probe of [wc.readinessProbe, wc.livenessProbe]) assert.equal(portOf(wc, probe.httpGet.port), wport);
    assert.equal(worker.spec.template.metadata.annotations['prometheus.io/port'], String(wport));
    assert.ok(wpod.terminationGracePeriodSeconds > wconfig['http.shutdowntimeout'], 'workers get time to finish or nak');
  });

  it('keeps credentials in Secrets, never in the ConfigMap', () => {
    for (const docs of [base, example]) {
      for (const cm of docs.filter((d) => d.kind === 'ConfigMap')) {
        const text = JSON.stringify(cm.data);
        assert.doesNotMatch(text, /secretaccesskey|accesskeyid|password|postgres:\/\/[^@"]*:[^@"]*@/i, `${cm.metadata.name} holds no credentials`);
      }
    }
  });

  it('documents every file in its README', async () => {
    const readme = await readFile(new URL('README.md', root), 'utf8');
    for (const f of (await readdir(root)).filter((f) => f.endsWith('.yaml'))) assert.ok(readme.includes(f), `README mentions ${f}`);
    assert.ok(readme.includes('examples/existing-services'));
  });
});
