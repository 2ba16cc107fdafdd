/**
 * Operating a node: /healthz, /readyz, /metrics (route templates, never paths), one log line per
 * request carrying the request id, that id in the events, no credentials in logs, and /readyz
 * following PostgreSQL down and back up without a restart.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { loadConfig } from '../libs/config/index.js';
import type { RegistryEvent } from '../libs/events/index.js';
import { createLogger } from '../libs/log/index.js';
import { migrate, openDatabase } from '../libs/metadata/index.js';
import { startWharf, type RunningWharf } from '../services/cli/start.js';
import { blobOf, pushBlob } from './helpers/oci.js';
import { spawnWharf, type WharfProcess } from './helpers/processes.js';
import { startTcpProxy, type TcpProxy } from './helpers/tcp-proxy.js';
import { eventually } from './helpers/wait.js';

/** Collects every JSON log line a logger writes. */
function captureLogs(): { stream: Writable; lines: Array<Record<string, unknown>>; text: () => string } {
  const raw: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      raw.push(chunk.toString());
      done();
    },
  });
  return {
    stream,
    get lines() {
      return raw
        .join('')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    },
    text: () => raw.join(''),
  };
}

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-ops-'));
  await chmod(dir, 0o755);
  return dir;
}

describe('a running node', () => {
  const logs = captureLogs();
  let wharf: RunningWharf;
  let dataDir: string;
  let base: string;
  const events: RegistryEvent[] = [];

  before(async () => {
    dataDir = await tempDir();
    const config = loadConfig({ env: {}, overrides: { 'http.addr': '127.0.0.1:0', 'data.dir': dataDir, 'http.prefix': '/reg' } });
    wharf = await startWharf(config, createLogger('info', {}, logs.stream));
    base = `${wharf.url}/reg`;
    wharf.bus.subscribe('wharf.events.>', (_subject, event) => void events.push(event));
  });

  after(async () => {
    await wharf.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('answers /healthz and /readyz under http.prefix, naming each dependency it checked', async () => {
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
    const ready = await fetch(`${base}/readyz`);
    assert.equal(ready.status, 200);
    const body = (await ready.json()) as { status: string; down: string[]; checks: Record<string, { ok: boolean; required: boolean }> };
    assert.equal(body.status, 'ready');
    assert.deepEqual(body.down, []);
    // Embedded mode has no NATS to check (the in-process bus); cluster mode reports it, not required.
    assert.deepEqual(Object.keys(body.checks).sort(), ['postgresql', 'storage']);
    assert.equal(body.checks.postgresql!.required, true);
    assert.equal(body.checks.storage!.required, true);
  });

  it('logs one line per request with the incoming X-Request-Id, and puts that id in the event', async () => {
    const blob = blobOf(`request id ${randomBytes(8).toString('hex')}`);
    const res = await fetch(`${base}/v2/ops/app/blobs/uploads/?digest=${blob.digest}`, {
      method: 'POST',
      headers: { 'x-request-id': 'ops-test-4711', 'content-type': 'application/octet-stream', authorization: 'Bearer sup3r-s3cret-t0ken', cookie: 'session=c00kie-value' },
      body: blob.bytes,
    });
    assert.equal(res.status, 201, await res.text());
    assert.equal(res.headers.get('x-request-id'), 'ops-test-4711');
    const line = await eventually(() => {
      const found = logs.lines.find((l) => l.reqId === 'ops-test-4711' && l.msg === 'request');
      assert.ok(found, 'request log line');
      return found;
    });
    assert.equal(line.method, 'POST');
    assert.equal(line.route, '/v2/<name>/blobs/uploads/');
    assert.equal(line.repository, 'ops/app');
    assert.equal(line.status, 201);
    assert.ok((line.bytesIn as number) >= blob.bytes.length, `bytesIn ${line.bytesIn}`);
    assert.ok((line.bytesOut as number) > 0);
    assert.equal(typeof line.ms, 'number');
    assert.equal(logs.lines.filter((l) => l.reqId === 'ops-test-4711' && l.msg === 'request').length, 1, 'exactly one line');
    const event = await eventually(() => {
      const found = events.find((e) => e.target.digest === blob.digest);
      assert.ok(found, 'blob push event');
      return found;
    });
    assert.equal(event.request.id, 'ops-test-4711');
    assert.ok(!logs.text().includes('sup3r-s3cret-t0ken'), 'no token in any log line');
    assert.ok(!logs.text().includes('c00kie-value'), 'no cookie in any log line');
  });

  it('makes up a request id when the incoming one is not a plain id', async () => {
    const res = await fetch(`${base}/v2/`, { headers: { 'x-request-id': 'bad id {"json":1}' } });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('x-request-id') ?? '', /^[0-9a-f-]{36}$/);
  });

  it('exposes the metric families on /metrics with route templates, never repository names or digests', async () => {
    const secret = `zzmetricsrepo${randomBytes(4).toString('hex')}`;
    const blob = blobOf('metrics');
    assert.equal((await pushBlob(base, `team/${secret}`, blob)).status, 201);
    assert.equal((await fetch(`${base}/v2/team/${secret}/blobs/${blob.digest}`)).status, 200);
    assert.equal((await fetch(`${base}/v2/team/${secret}/manifests/latest`)).status, 404);
    const res = await fetch(`${base}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /text\/plain/);
    const text = await res.text();
    for (const family of [
      'wharf_http_requests_total',
      'wharf_http_request_duration_seconds',
      'wharf_http_request_bytes_total',
      'wharf_http_response_bytes_total',
      'wharf_http_requests_in_flight',
      'wharf_uploads_in_flight',
      'wharf_outbox_backlog',
      'wharf_outbox_oldest_unpublished_age_seconds',
      'wharf_consumer_pending',
      'wharf_db_pool_connections',
      'wharf_db_pool_waiting',
      'wharf_dependency_up',
      'process_resident_memory_bytes',
      'nodejs_eventloop_lag_seconds',
    ]) {
      assert.match(text, new RegExp(`^# TYPE ${family} `, 'm'), `family ${family}`);
    }
    assert.ok(!text.includes(secret), 'no repository name in any label');
    assert.ok(!text.includes(blob.digest.slice(7)), 'no digest in any label');
    assert.match(text, /wharf_http_requests_total\{method="GET",route="\/v2\/<name>\/blobs\/<digest>",status="200"\} \d+/);
    assert.match(text, /wharf_http_requests_total\{method="GET",route="\/v2\/<name>\/manifests\/<reference>",status="404"\} \d+/);
    assert.match(text, /wharf_dependency_up\{dependency="postgresql"\} 1/);
    assert.match(text, /wharf_dependency_up\{dependency="storage"\} 1/);
    assert.match(text, /wharf_db_pool_connections\{pool="queries",state="idle"\} \d+/);
    // Every route label is a template or one of the operations endpoints.
    for (const m of text.matchAll(/route="([^"]*)"/g)) assert.match(m[1]!, /^(\/v2\/(<name>\/.*|_catalog|)?|\/healthz|\/readyz|\/metrics|\/v2\/\*|\/v2|unmatched)$/, m[1]);
  });
});

describe('PostgreSQL going away and coming back', () => {
  const serverUrl = process.env.WHARF_TEST_DATABASE_URL;
  let proxy: TcpProxy;
  // A separate process, so a crash (an unhandled 'error' event) shows as an exit, not as an
  // exception the test runner would catch.
  let wharf: WharfProcess;
  let dataDir: string;
  const dbName = `wharf_test_${randomBytes(6).toString('hex')}`;

  before(async () => {
    if (!serverUrl) return;
    const admin = new pg.Client({ connectionString: serverUrl });
    await admin.connect();
    await admin.query(`create database ${dbName}`);
    await admin.end();
    const target = new URL(serverUrl);
    proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port || 5432) });
    const url = new URL(serverUrl);
    url.host = `127.0.0.1:${proxy.port}`;
    url.pathname = `/${dbName}`;
    dataDir = await tempDir();
    const config = loadConfig({ env: {}, overrides: { 'http.addr': '127.0.0.1:0', 'data.dir': dataDir, 'database.url': url.toString(), 'health.timeout': 1 } });
    const database = openDatabase({ url: config['database.url'], poolSize: 1, uploadPoolSize: 1 });
    await migrate(database.db).finally(() => database.close());
    wharf = await spawnWharf('serve', config);
  });

  after(async () => {
    if (!serverUrl) return;
    wharf?.child.kill('SIGKILL');
    await wharf?.exited;
    await proxy?.close();
    await rm(dataDir, { recursive: true, force: true });
    const admin = new pg.Client({ connectionString: serverUrl });
    await admin.connect();
    await admin.query(`drop database if exists ${dbName} with (force)`);
    await admin.end();
  });

  it('turns /readyz 503 naming PostgreSQL, answers API requests 503 UNAVAILABLE with Retry-After, and recovers without a restart', async (t) => {
    if (!serverUrl) return t.skip('needs WHARF_TEST_DATABASE_URL');
    const blob = blobOf('before the outage');
    assert.equal((await pushBlob(wharf.url, 'outage/app', blob)).status, 201);
    assert.equal((await fetch(`${wharf.url}/readyz`)).status, 200);

    // An upload chunk is half sent when PostgreSQL goes: the node must survive it (its database
    // connection breaks while checked out), refuse the chunk, and keep the session consistent.
    const post = await fetch(`${wharf.url}/v2/outage/app/blobs/uploads/`, { method: 'POST' });
    assert.equal(post.status, 202);
    const location = post.headers.get('location')!;
    const target = new URL(wharf.url);
    const patch = request({ host: target.hostname, port: target.port, method: 'PATCH', path: location, headers: { 'content-length': '200000', 'content-range': '0-199999' } });
    const patched = new Promise<number | 'cut'>((resolve) => {
      patch.on('response', (r) => {
        r.resume();
        resolve(r.statusCode!);
      });
      patch.on('error', () => resolve('cut'));
    });
    await new Promise<void>((resolve) => patch.write(Buffer.alloc(1000), () => resolve()));
    // In flight, and holding its session's row lock on a connection of the uploads pool.
    await eventually(async () => {
      const text = await (await fetch(`${wharf.url}/metrics`)).text();
      assert.match(text, /^wharf_uploads_in_flight 1$/m);
      assert.match(text, /^wharf_db_pool_connections\{pool="uploads",state="busy"\} 1$/m);
    });

    await proxy.stop();
    patch.end(Buffer.alloc(199_000));
    const outcome = await patched;
    assert.ok(outcome === 503 || outcome === 'cut', `chunk refused, got ${outcome}`);
    assert.equal(wharf.child.exitCode, null, `the node is still running: ${wharf.stderr()}`);
    const down = await eventually(async () => {
      const res = await fetch(`${wharf.url}/readyz`);
      assert.equal(res.status, 503);
      return (await res.json()) as { status: string; down: string[]; checks: Record<string, { ok: boolean; error?: string }> };
    });
    assert.equal(down.status, 'unavailable');
    assert.deepEqual(down.down, ['postgresql']);
    assert.equal(down.checks.storage!.ok, true);
    assert.ok(down.checks.postgresql!.error, 'says why');
    assert.equal((await fetch(`${wharf.url}/healthz`)).status, 200, 'still alive: no restart wanted');

    const res = await fetch(`${wharf.url}/v2/outage/app/blobs/${blob.digest}`);
    assert.equal(res.status, 503);
    assert.equal(res.headers.get('retry-after'), '5');
    const body = (await res.json()) as { errors: Array<{ code: string; message: string; detail: { unavailable: string[] } }> };
    assert.equal(body.errors[0]!.code, 'UNAVAILABLE');
    assert.deepEqual(body.errors[0]!.detail.unavailable, ['postgresql']);
    const metrics = await (await fetch(`${wharf.url}/metrics`)).text();
    assert.match(metrics, /wharf_dependency_up\{dependency="postgresql"\} 0/);

    await proxy.start();
    await eventually(async () => assert.equal((await fetch(`${wharf.url}/readyz`)).status, 200));
    const again = await eventually(async () => {
      const r = await fetch(`${wharf.url}/v2/outage/app/blobs/${blob.digest}`);
      assert.equal(r.status, 200);
      return r;
    });
    assert.equal(Buffer.from(await again.arrayBuffer()).toString(), 'before the outage');
    assert.equal((await pushBlob(wharf.url, 'outage/app', blobOf('after the outage'))).status, 201);
    const session = await fetch(`${wharf.url}${location}`);
    assert.equal(session.status, 204);
    assert.equal(session.headers.get('range'), '0-0', 'the refused chunk left nothing in the session');
    assert.equal(wharf.child.exitCode, null, `the node never restarted: ${wharf.stderr()}`);
  });
});

describe('a node draining on shutdown', () => {
  it('finishes the request in flight, serves the next one on that connection with Connection: close, then stops', async () => {
    const dataDir = await tempDir();
    const config = loadConfig({ env: {}, overrides: { 'http.addr': '127.0.0.1:0', 'data.dir': dataDir, 'log.level': 'silent' } });
    const wharf = await startWharf(config, createLogger('silent'));
    try {
      const post = await fetch(`${wharf.url}/v2/drain/app/blobs/uploads/`, { method: 'POST' });
      const location = post.headers.get('location')!;
      const target = new URL(wharf.url);
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      const send = (method: string, body?: Buffer, write?: (req: ReturnType<typeof request>) => Promise<void>) =>
        new Promise<{ status: number; connection: string | undefined }>((resolve, reject) => {
          const req = request({
            host: target.hostname,
            port: target.port,
            method,
            path: location,
            agent,
            headers: body ? { 'content-length': String(body.length), 'content-range': `0-${body.length - 1}` } : {},
          });
          req.on('response', (res) => {
            res.resume();
            res.on('end', () => resolve({ status: res.statusCode!, connection: res.headers.connection }));
          });
          req.on('error', reject);
          if (write) void write(req);
          else req.end(body);
        });
      const body = Buffer.alloc(64 * 1024, 7);
      let closing: Promise<void> | undefined;
      const first = send('PATCH', body, async (req) => {
        req.write(body.subarray(0, 1024));
        // The node is told to stop while this body is still arriving.
        await eventually(async () => assert.match(await (await fetch(`${wharf.url}/metrics`)).text(), /^wharf_uploads_in_flight 1$/m));
        closing = wharf.close();
        await eventually(async () =>
          assert.equal(
            await fetch(`${wharf.url}/healthz`).then(
              () => 'open',
              () => 'refused',
            ),
            'refused',
          ),
        );
        req.end(body.subarray(1024));
      });
      assert.equal((await first).status, 202);
      const next = await send('GET');
      assert.equal(next.status, 204, 'served on the connection already open');
      assert.equal(next.connection, 'close');
      await closing;
      agent.destroy();
    } finally {
      await wharf.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
