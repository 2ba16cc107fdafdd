/**
 * No Docker engine runs where these tests run, so docker-compose.yml is checked for structure:
 * the services the cluster needs, one-shot steps in order, and every WHARF_* variable, command,
 * port and bucket name matching what the code actually reads.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { loadConfig, splitAddr } from '../libs/config/index.js';

interface Service {
  image?: string;
  build?: string;
  command?: string[];
  entrypoint?: string[];
  environment?: Record<string, string>;
  depends_on?: Record<string, { condition: string }> | string[];
  ports?: string[];
  volumes?: string[];
}

const compose = parse(await readFile(new URL('../docker-compose.yml', import.meta.url), 'utf8'), { merge: true }) as { services: Record<string, Service> };
const services = compose.services;
const dockerfile = await readFile(new URL('../Dockerfile', import.meta.url), 'utf8');
const nginx = await readFile(new URL('../deploy/compose/nginx.conf', import.meta.url), 'utf8');
const wharfServices = Object.entries(services).filter(([, s]) => s.build === '.');
const apiServices = wharfServices.filter(([, s]) => s.command?.[0] === 'serve');
const imageAddr = /ENV WHARF_HTTP_ADDR=(\S+)/.exec(dockerfile)?.[1];

function dependsOn(service: Service, name: string): string | undefined {
  const deps = service.depends_on;
  if (Array.isArray(deps)) return deps.includes(name) ? 'service_started' : undefined;
  return deps?.[name]?.condition;
}

describe('docker-compose.yml', () => {
  it('has PostgreSQL, NATS with JetStream, MinIO with its bucket, a migration, two API replicas, a worker and a load balancer', () => {
    for (const name of ['postgres', 'nats', 'minio', 'createbucket', 'migrate', 'worker', 'lb']) assert.ok(services[name], `service ${name}`);
    assert.ok(services.nats!.command?.includes('-js'), 'nats runs with JetStream');
    assert.equal(apiServices.length, 2, 'two API replicas');
    assert.deepEqual(services.migrate!.command, ['migrate']);
    assert.deepEqual(services.worker!.command, ['worker']);
  });

  it('orders start-up: migrate after PostgreSQL is healthy, API and worker after migrate and the bucket', () => {
    assert.equal(dependsOn(services.migrate!, 'postgres'), 'service_healthy');
    for (const [name, s] of [...apiServices, ['worker', services.worker!] as const]) {
      assert.equal(dependsOn(s, 'migrate'), 'service_completed_successfully', `${name} waits for migrate`);
      assert.equal(dependsOn(s, 'createbucket'), 'service_completed_successfully', `${name} waits for the bucket`);
    }
  });

  it('gives every Wharf container a configuration Wharf accepts, on the same database, bus and bucket', () => {
    const bucketCreated = /mc mb (?:--ignore-existing )?local\/(\S+)/.exec(services.createbucket!.entrypoint!.join(' '))?.[1];
    for (const [name, s] of wharfServices) {
      const env = s.environment ?? {};
      const config = loadConfig({ env }); // throws on any unknown or mistyped WHARF_* variable
      assert.equal(config['storage.driver'], 's3', name);
      assert.equal(config['storage.s3.bucket'], bucketCreated, `${name} uses the bucket createbucket makes`);
      assert.match(config['database.url'], /@postgres:5432\//, name);
      assert.match(config['nats.url'], /^nats:\/\/nats:4222$/, name);
      assert.equal(new URL(config['storage.s3.endpoint']).host, 'minio:9000', name);
      assert.equal(config['storage.s3.accesskeyid'], services.minio!.environment!.MINIO_ROOT_USER, name);
      assert.equal(config['storage.s3.secretaccesskey'], services.minio!.environment!.MINIO_ROOT_PASSWORD, name);
    }
  });

  it('load-balances one published port over every API replica, at the port the image listens on', () => {
    assert.ok(imageAddr, 'Dockerfile sets WHARF_HTTP_ADDR');
    const { port } = splitAddr(imageAddr);
    for (const [name] of apiServices) assert.match(nginx, new RegExp(`server ${name}:${port};`), `nginx upstream has ${name}`);
    assert.equal(services.lb!.ports?.length, 1);
    assert.match(nginx, /client_max_body_size 0;/);
    assert.match(nginx, /proxy_request_buffering off;/);
  });

  it('runs the wharf command the image provides, with commands it knows', async () => {
    assert.match(dockerfile, /ENTRYPOINT \["node", "dist\/services\/cli\/main.js"\]/);
    const main = await readFile(new URL('../services/cli/main.ts', import.meta.url), 'utf8');
    for (const [name, s] of wharfServices) assert.ok(main.includes(`case '${s.command![0]}':`), `${name}: wharf ${s.command![0]} exists`);
  });
});
