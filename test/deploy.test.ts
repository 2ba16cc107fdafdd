/**
 * docker-compose.yml checked for structure, fast (test/deploy/compose.test.ts runs it for real,
 * through podman, in `npm run test:deploy`): the services the cluster needs, one-shot steps in
 * order, one image build shared by every Wharf service, pinned tags, loopback publishing, auth
 * on, and every WHARF_* variable, command, port and bucket name matching what the code reads.
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
  profiles?: string[];
  healthcheck?: { test: string[] };
}

const compose = parse(await readFile(new URL('../docker-compose.yml', import.meta.url), 'utf8'), { merge: true }) as { services: Record<string, Service>; 'x-wharf-image': string };
const services = compose.services;
const wharfImage = compose['x-wharf-image'];
const dockerfile = await readFile(new URL('../Dockerfile', import.meta.url), 'utf8');
const nginx = await readFile(new URL('../deploy/compose/nginx.conf', import.meta.url), 'utf8');
const wharfServices = Object.entries(services).filter(([, s]) => s.image === wharfImage && !s.profiles);
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

  it('builds the Wharf image once, and every Wharf service runs that image', () => {
    assert.deepEqual(
      Object.entries(services)
        .filter(([, s]) => s.build !== undefined)
        .map(([n]) => n),
      ['migrate'],
    );
    assert.equal(services.migrate!.build, '.');
    assert.ok(wharfServices.length >= 4);
  });

  it('pins every image tag, publishes only on loopback, and turns token auth on', () => {
    for (const [name, s] of Object.entries(services)) {
      const tag = s.image?.split(':').at(-1);
      assert.ok(tag && tag !== 'latest' && /\d/.test(tag), `${name}: ${s.image} is pinned`);
      for (const p of s.ports ?? []) assert.match(p, /^127\.0\.0\.1:/, `${name} publishes ${p} on loopback only`);
    }
    for (const [name, s] of wharfServices) assert.equal(loadConfig({ env: s.environment ?? {} })['auth.mode'], 'token', `${name}: token auth`);
    assert.deepEqual(services.keys!.command?.slice(0, 1), ['keys'], 'the one-time keys command');
  });

  it('names healthcheck programs the official images ship: pg_isready, busybox wget (nats -alpine), mc (minio)', () => {
    assert.equal(services.postgres!.healthcheck!.test[1], 'pg_isready');
    assert.match(services.nats!.image!, /-alpine$/, 'the plain nats image is the bare binary: no wget, no shell');
    assert.equal(services.nats!.healthcheck!.test[1], 'wget');
    assert.equal(services.minio!.healthcheck!.test[1], 'mc');
    assert.equal(services.worker!.healthcheck!.test[1], 'node', 'the Wharf image has node, not curl');
  });

  it('runs the wharf command the image provides, with commands it knows', async () => {
    assert.match(dockerfile, /ENTRYPOINT \["wharf"\]/);
    assert.match(dockerfile, /ln -s \/app\/bin\/wharf\.mjs \/usr\/local\/bin\/wharf/);
    const main = await readFile(new URL('../services/cli/main.ts', import.meta.url), 'utf8');
    for (const [name, s] of wharfServices) assert.ok(main.includes(`case '${s.command![0]}':`), `${name}: wharf ${s.command![0]} exists`);
  });
});
