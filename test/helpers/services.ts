import { randomBytes } from 'node:crypto';
import { after, before } from 'node:test';
import pg from 'pg';
import { migrate, openDatabase } from '../../libs/metadata/index.js';
import { startS3rver } from './s3rver.js';

/**
 * The services cluster-mode tests need, found in this order: WHARF_TEST_* variables, then
 * containers where a Docker engine answers (testcontainers), then s3rver for S3. What cannot be
 * found is reported as a skip reason naming it.
 */
export interface ClusterServices {
  /** A database created for this test file; dropped by close(). */
  databaseUrl: string;
  natsUrl: string;
  s3: { endpoint: string; bucket: string; region: string; accessKeyId: string; secretAccessKey: string };
  close(): Promise<void>;
}

type Closer = () => Promise<void>;

/** The images testcontainers starts: the tags docker-compose.yml pins (test/deploy checks they agree). */
export const POSTGRES_IMAGE = 'postgres:15.20-bookworm';
export const NATS_IMAGE = 'nats:2.9.25-alpine';

/** Whether a container engine answers testcontainers. */
export async function dockerAvailable(): Promise<boolean> {
  try {
    const { getContainerRuntimeClient } = await import('testcontainers');
    await getContainerRuntimeClient();
    return true;
  } catch {
    return false;
  }
}

async function postgresServer(closers: Closer[], docker: boolean): Promise<string | undefined> {
  if (process.env.WHARF_TEST_DATABASE_URL) return process.env.WHARF_TEST_DATABASE_URL;
  if (!docker) return undefined;
  const { GenericContainer, Wait } = await import('testcontainers');
  const container = await new GenericContainer(POSTGRES_IMAGE)
    .withEnvironment({ POSTGRES_PASSWORD: 'wharf', POSTGRES_DB: 'test' })
    .withExposedPorts(5432)
    .withWaitStrategy(Wait.forLogMessage(/database system is ready to accept connections/, 2))
    .start();
  closers.push(async () => void (await container.stop()));
  return `postgres://postgres:wharf@${container.getHost()}:${container.getMappedPort(5432)}/test`;
}

async function natsServer(closers: Closer[], docker: boolean): Promise<string | undefined> {
  if (process.env.WHARF_TEST_NATS_URL) return process.env.WHARF_TEST_NATS_URL;
  if (!docker) return undefined;
  const { GenericContainer, Wait } = await import('testcontainers');
  // Every port the image EXPOSEs is mapped: podman's Docker API lists the unmapped ones as empty
  // bindings, which testcontainers waits on until it times out.
  const container = await new GenericContainer(NATS_IMAGE)
    .withCommand(['-js'])
    .withExposedPorts(4222, 6222, 8222)
    .withWaitStrategy(Wait.forLogMessage(/Server is ready/))
    .start();
  closers.push(async () => void (await container.stop()));
  return `nats://${container.getHost()}:${container.getMappedPort(4222)}`;
}

/** A fresh database on the server, so no run depends on what an earlier one left. */
async function freshDatabase(serverUrl: string, closers: Closer[]): Promise<string> {
  const name = `wharf_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  await admin.query(`create database ${name}`);
  await admin.end();
  closers.push(async () => {
    const c = new pg.Client({ connectionString: serverUrl });
    await c.connect();
    await c.query(`drop database if exists ${name} with (force)`);
    await c.end();
  });
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

export async function clusterServices(): Promise<ClusterServices | { skip: string }> {
  const closers: Closer[] = [];
  const close = async () => {
    for (const c of closers.reverse()) await c().catch(() => {});
  };
  try {
    const docker = !process.env.WHARF_TEST_DATABASE_URL || !process.env.WHARF_TEST_NATS_URL ? await dockerAvailable() : false;
    const pgUrl = await postgresServer(closers, docker);
    if (!pgUrl) return { skip: 'cluster mode needs PostgreSQL: set WHARF_TEST_DATABASE_URL or run a Docker engine' };
    const natsUrl = await natsServer(closers, docker);
    if (!natsUrl) {
      await close();
      return { skip: 'cluster mode needs NATS with JetStream: set WHARF_TEST_NATS_URL or run a Docker engine' };
    }
    const databaseUrl = await freshDatabase(pgUrl, closers);
    const s3 = await startS3rver();
    closers.push(() => s3.close());
    return {
      databaseUrl,
      natsUrl,
      s3: { endpoint: s3.endpoint, bucket: s3.bucket, region: s3.region, accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

/** What a suite's tests read of its cluster services: `skip` is the reason they are missing. */
export interface ClusterSuite {
  readonly services: ClusterServices | undefined;
  readonly skip: string | undefined;
}

/**
 * One suite's cluster services: found in a `before` hook (then `setup` runs), closed in an `after`
 * hook once `teardown` has stopped what the suite started on them. Tests begin with
 * `if (suite.skip) return t.skip(suite.skip);`.
 */
export function clusterSuite(hooks: { setup?(services: ClusterServices): Promise<void>; teardown?(): Promise<void> } = {}): ClusterSuite {
  let found: ClusterServices | { skip: string } | undefined;
  before(async () => {
    found = await clusterServices();
    if (!('skip' in found)) await hooks.setup?.(found);
  });
  after(async () => {
    await hooks.teardown?.();
    if (found && !('skip' in found)) await found.close();
  });
  return {
    get services() {
      return found && !('skip' in found) ? found : undefined;
    },
    get skip() {
      if (!found) return 'cluster services were not looked up';
      return 'skip' in found ? found.skip : undefined;
    },
  };
}

/** Runs the migrations on a fresh test database, as `wharf migrate` does. */
export async function migrateDatabase(databaseUrl: string): Promise<void> {
  const admin = openDatabase({ url: databaseUrl, poolSize: 1, uploadPoolSize: 1 });
  await migrate(admin.db).finally(() => admin.close());
}
