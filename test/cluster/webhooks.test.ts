import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { afterEach, describe, it } from 'node:test';
import { configToEnv, type Config } from '../../libs/config/index.js';
import { createLogger } from '../../libs/log/index.js';
import { migrate, openDatabase, type Database } from '../../libs/metadata/index.js';
import { startServe, startWorker, type RunningWharf } from '../../services/cli/start.js';
import { clusterConfig } from '../helpers/cluster.js';
import { deleteStream, startPrivateNatsServer, type PrivateNatsServer } from '../helpers/nats.js';
import { pushBlob, pushImage, randomBlob } from '../helpers/oci.js';
import { spawnWharf, WHARF_MAIN, type WharfProcess } from '../helpers/processes.js';
import { clusterSuite } from '../helpers/services.js';
import { eventually } from '../helpers/wait.js';
import { startReceiver, type WebhookReceiver } from '../helpers/webhook-receiver.js';

let nats: PrivateNatsServer | undefined;
let admin: Database | undefined;
const cleanups: Array<() => Promise<unknown>> = [];

const suite = clusterSuite({
  async setup(services) {
    nats = await startPrivateNatsServer();
    admin = openDatabase({ url: services.databaseUrl, poolSize: 2, uploadPoolSize: 1 });
    await migrate(admin.db);
  },
  async teardown() {
    await admin?.close();
    await nats?.dispose();
  },
});

// Every test's nodes stop when it ends: the database is shared by the tests of this file, and a
// relay left running would publish the next test's outbox rows to its own stream.
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
});

/** A cluster config on the private NATS server with one webhook endpoint and short backoffs. */
function configWith(endpoint: Record<string, unknown>, overrides: Partial<Config> = {}): Config {
  const config = clusterConfig(suite.services!, {
    'nats.url': nats!.url,
    'events.pull': false,
    'notifications.endpoints': [{ backoff: '50ms', maxbackoff: '500ms', threshold: 5, maxattempts: 1000, ...endpoint }],
    ...overrides,
  });
  cleanups.push(() => deleteStream(nats!.url, config['nats.stream']));
  return config;
}

async function startApi(config: Config): Promise<RunningWharf> {
  const node = await startServe(config, createLogger('silent'));
  cleanups.push(() => node.close());
  return node;
}

async function startInProcessWorker(config: Config): Promise<{ close(): Promise<void> }> {
  const worker = await startWorker(config, createLogger(process.env.WHARF_TEST_LOG_LEVEL ?? 'silent'));
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await worker.close();
  };
  cleanups.push(close);
  return { close };
}

async function outboxIds(repositoryPrefix: string): Promise<string[]> {
  const rows = await admin!.db.selectFrom('outbox').select(['event_id', 'payload']).execute();
  return rows.filter((r) => (r.payload as { target: { repository: string } }).target.repository.startsWith(repositoryPrefix)).map((r) => r.event_id);
}

/** Every outbox event of the repositories under `prefix` reached the receiver (at least once). */
async function allArrive(receiver: WebhookReceiver, prefix: string, expected: number, timeoutMs = 60_000): Promise<void> {
  const ids = await outboxIds(prefix);
  assert.equal(ids.length, expected, 'events in the outbox');
  await eventually(
    () => {
      const got = receiver.deliveredIds();
      const missing = ids.filter((id) => !got.has(id));
      assert.equal(missing.length, 0, `${missing.length} of ${ids.length} events not delivered yet`);
    },
    timeoutMs,
    200,
  );
}

describe('a receiver that is down while 100 images are pushed', () => {
  it('gets every push event once it is back', async (t) => {
    if (suite.skip) return t.skip(suite.skip);
    const receiver = await startReceiver();
    cleanups.push(() => receiver.down());
    const config = configWith({ name: 'down-then-up', url: receiver.url });
    await receiver.down();
    const worker = await startInProcessWorker(config);
    const api = await startApi(config);
    await Promise.all(
      [0, 1, 2, 3].map(async (lane) => {
        for (let i = lane; i < 100; i += 4) await pushImage(api.url, `outage/app${i % 10}`, `v${i}`);
      }),
    );
    // Meanwhile the deliveries fail with "connection refused", and the admin view says so.
    const status = await eventually(async () => {
      const body = (await (await fetch(`${api.url}/_wharf/admin/webhooks`)).json()) as { endpoints: Array<Record<string, any>> };
      const e = body.endpoints.find((x) => x.name === 'down-then-up')!;
      assert.ok(e.failing > 0, 'failing deliveries shown');
      return e;
    });
    assert.equal(status.delivered, 0);
    assert.match(status.lastError.message, /ECONNREFUSED/);
    assert.ok(status.pending > 0, 'pending deliveries shown');

    await receiver.up();
    await allArrive(receiver, 'outage/', 300);
    const delivered = await eventually(async () => {
      const body = (await (await fetch(`${api.url}/_wharf/admin/webhooks`)).json()) as { endpoints: Array<Record<string, any>> };
      const e = body.endpoints.find((x) => x.name === 'down-then-up')!;
      assert.equal(e.pending, 0);
      return e;
    });
    assert.equal(delivered.delivered, 300);
    await worker.close();
  });
});

describe('a worker killed mid-burst', () => {
  it('loses nothing: another worker delivers what it had claimed or not yet queued', async (t) => {
    if (suite.skip) return t.skip(suite.skip);
    // Slow enough that the kill lands while deliveries are in flight.
    const receiver = await startReceiver(() => new Promise((resolve) => setTimeout(() => resolve(200), 30)));
    cleanups.push(() => receiver.down());
    const config = configWith({ name: 'killed', url: receiver.url, timeout: '1s' });
    const api = await startApi(config);
    const first: WharfProcess = await spawnWharf('worker', config);
    cleanups.push(async () => {
      first.child.kill('SIGKILL');
      await first.exited;
    });
    const pushes = (async () => {
      for (let i = 0; i < 40; i++) await pushImage(api.url, `burst/app${i % 4}`, `v${i}`);
    })();
    await eventually(() => assert.ok(receiver.delivered().length >= 15, `only ${receiver.delivered().length} delivered so far`), 60_000, 20);
    first.child.kill('SIGKILL');
    await first.exited;
    await pushes;
    const second = await spawnWharf('worker', config);
    cleanups.push(async () => {
      second.child.kill('SIGKILL');
      await second.exited;
    });
    // Up to the ack wait (5 s), a lease (timeout + 5 s) and the dead process's pull request
    // expiring on the server before everything the killed worker held is handed out again.
    await allArrive(receiver, 'burst/', 120, 120_000);
  });
});

describe('NATS restarted during a burst of pushes', () => {
  it('loses nothing', async (t) => {
    if (suite.skip) return t.skip(suite.skip);
    const receiver = await startReceiver();
    cleanups.push(() => receiver.down());
    const config = configWith({ name: 'nats-restart', url: receiver.url });
    await startInProcessWorker(config);
    const api = await startApi(config);
    for (let i = 0; i < 10; i++) await pushImage(api.url, `natsdown/app`, `a${i}`);
    await nats!.stop();
    for (let i = 0; i < 10; i++) await pushImage(api.url, `natsdown/app`, `b${i}`);
    await nats!.start();
    api.relay.wake();
    for (let i = 0; i < 10; i++) await pushImage(api.url, `natsdown/app`, `c${i}`);
    await allArrive(receiver, 'natsdown/', 90);
  });
});

describe('wharf webhooks redrive', () => {
  function wharfCli(config: Config, args: string[]): Promise<{ code: number | null; out: string }> {
    return new Promise((resolve) => {
      const env: NodeJS.ProcessEnv = { ...process.env, ...configToEnv(config), WHARF_LOG_LEVEL: 'warn' };
      for (const name of Object.keys(env)) if (name.startsWith('WHARF_TEST_')) delete env[name];
      const child = spawn(process.execPath, [WHARF_MAIN, ...args], { env });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (out += d.toString()));
      child.on('exit', (code) => resolve({ code, out }));
    });
  }

  it('moves dead letters of one endpoint back to pending, and they are delivered', async (t) => {
    if (suite.skip) return t.skip(suite.skip);
    let open = false;
    const receiver = await startReceiver(() => (open ? 200 : 500));
    cleanups.push(() => receiver.down());
    const config = configWith({ name: 'redrive-me', url: receiver.url, maxattempts: 2 });
    await startInProcessWorker(config);
    const api = await startApi(config);
    await pushBlob(api.url, 'redrive/app', randomBlob(64));
    const [id] = await outboxIds('redrive/');
    await eventually(() => admin!.db.selectFrom('webhook_dead_letters').select('id').where('event_id', '=', id!).executeTakeFirstOrThrow(), 30_000, 100);

    const bad = await wharfCli(config, ['webhooks', 'redrive', '--event', 'not-a-uuid']);
    assert.equal(bad.code, 2);
    assert.match(bad.out, /--event must be an event id/);
    const unknown = await wharfCli(config, ['webhooks', 'resend']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.out, /usage: wharf webhooks redrive/);

    open = true;
    const ok = await wharfCli(config, ['webhooks', 'redrive', '--endpoint', 'redrive-me']);
    assert.equal(ok.code, 0, ok.out);
    assert.match(ok.out, /redriven: 1 dead-lettered delivery back to pending/);
    await eventually(() => assert.ok(receiver.deliveredIds().has(id!), 'redriven event delivered'), 30_000, 100);
    assert.equal(await admin!.db.selectFrom('webhook_dead_letters').select('id').where('endpoint', '=', 'redrive-me').executeTakeFirst(), undefined);
  });
});
