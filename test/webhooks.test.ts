import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { ConfigError, loadConfig } from '../libs/config/index.js';
import { webhooks } from '../libs/metadata/index.js';
import { pushImage, randomBlob, pushBlob } from './helpers/oci.js';
import { WHARF_MAIN } from './helpers/processes.js';
import { startTestWharf, type TestWharf } from './helpers/server.js';
import { eventually } from './helpers/wait.js';
import { startReceiver, type WebhookReceiver } from './helpers/webhook-receiver.js';

let wharf: TestWharf;
const r: Record<string, WebhookReceiver> = {};
let deadOpen = false;

const SECRET = 'test-secret-\u00e9';

before(async () => {
  r.flaky = await startReceiver((_events, attempt) => (attempt <= 3 ? 500 : 200));
  r.signed = await startReceiver();
  r.all = await startReceiver();
  r.hang = await startReceiver((_events, attempt) => (attempt === 1 ? 'hang' : 200));
  r.quick = await startReceiver();
  r.dead = await startReceiver(() => (deadOpen ? 200 : 503));
  const endpoint = (name: string, extra: Record<string, unknown> = {}) => ({ name, url: r[name]?.url, backoff: '20ms', maxbackoff: '200ms', threshold: 1000, ...extra });
  wharf = await startTestWharf({
    'notifications.endpoints': [
      endpoint('flaky', { maxattempts: 10 }),
      endpoint('signed', { secret: SECRET, ignore: { actions: ['pull'] }, headers: { Authorization: ['Bearer abc'], 'X-Team': 'registry' } }),
      endpoint('all'),
      endpoint('hang', { timeout: '1s' }),
      endpoint('quick'),
      endpoint('dead', { maxattempts: 2 }),
      endpoint('off', { url: 'http://127.0.0.1:1/never', disabled: true }),
    ],
  });
});

after(async () => {
  await wharf?.close();
  for (const x of Object.values(r)) await x.down();
});

function forRepo(receiver: WebhookReceiver, repository: string) {
  return receiver.delivered().filter((e) => e.target.repository === repository);
}

async function outboxIds(repository: string): Promise<string[]> {
  const rows = await wharf.database.db.selectFrom('outbox').select(['event_id', 'payload']).execute();
  return rows.filter((row) => (row.payload as { target: { repository: string } }).target.repository === repository).map((row) => row.event_id);
}

describe('webhook delivery', () => {
  it('delivers on the 4th attempt to a receiver that answers 500 three times, and records every attempt', async () => {
    const image = await pushImage(wharf.base, 'hooks/flaky', 'v1');
    const manifestEvent = await eventually(() => {
      const e = forRepo(r.flaky!, 'hooks/flaky').find((x) => x.target.digest === image.digest);
      assert.ok(e, 'manifest push delivered');
      return e;
    });
    assert.equal(r.flaky!.attempts.get(manifestEvent.id), 4);
    const attempts = await eventually(async () => {
      const rows = await webhooks.attemptsOf(wharf.database.db, 'flaky', manifestEvent.id);
      assert.equal(rows.length, 4);
      return rows;
    });
    assert.deepEqual(
      attempts.map((a) => a.status),
      [500, 500, 500, 200],
    );
    assert.deepEqual(
      attempts.map((a) => a.attempt),
      [1, 2, 3, 4],
    );
    assert.match(attempts[0]!.error!, /^HTTP 500/);
    assert.equal(attempts[3]!.error, null);
    for (const a of attempts) assert.ok(a.latency_ms >= 0, 'latency recorded');
  });

  it("sends Distribution's envelope, configured headers, and an HMAC-SHA256 signature that verifies; ignore.actions drops pulls", async () => {
    const image = await pushImage(wharf.base, 'hooks/signed', 'v1');
    assert.equal((await fetch(`${wharf.base}/v2/hooks/signed/manifests/v1`)).status, 200);
    assert.equal((await fetch(`${wharf.base}/v2/hooks/signed/blobs/${image.config.digest}`)).status, 200);
    // The endpoint without filters gets both pulls: by then the filtered one has had its chance.
    await eventually(() => assert.equal(forRepo(r.all!, 'hooks/signed').filter((e) => e.action === 'pull').length, 2));
    await eventually(() => assert.equal(forRepo(r.signed!, 'hooks/signed').length, 3));
    assert.deepEqual(
      forRepo(r.signed!, 'hooks/signed').map((e) => e.action),
      ['push', 'push', 'push'],
    );
    const queued = await wharf.database.db.selectFrom('webhook_deliveries').select('subject').where('endpoint', '=', 'signed').execute();
    assert.ok(
      queued.every((q) => !q.subject.endsWith('.pull')),
      'no pull event queued for the endpoint that ignores pulls',
    );

    for (const req of r.signed!.requests) {
      assert.equal(req.headers['content-type'], 'application/vnd.docker.distribution.events.v1+json');
      assert.equal(req.headers.authorization, 'Bearer abc');
      assert.equal(req.headers['x-team'], 'registry');
      const expected = `sha256=${createHmac('sha256', SECRET).update(req.body).digest('hex')}`;
      assert.equal(req.headers['x-wharf-signature-256'], expected);
      assert.equal(req.headers['x-wharf-event-id'], req.events[0]!.id);
      const wrong = `sha256=${createHmac('sha256', 'other').update(req.body).digest('hex')}`;
      assert.notEqual(req.headers['x-wharf-signature-256'], wrong);
      const parsed = JSON.parse(req.body.toString()) as { events: unknown[] };
      assert.equal(parsed.events.length, 1);
    }
    const manifest = forRepo(r.signed!, 'hooks/signed').find((e) => e.target.digest === image.digest)!;
    assert.equal(manifest.target.tag, 'v1');
    for (const key of ['id', 'timestamp', 'action', 'target', 'request', 'actor', 'source']) assert.ok(key in manifest, `event has ${key}`);
    // Requests to the unfiltered endpoint are unsigned.
    assert.equal(r.all!.requests[0]!.headers['x-wharf-signature-256'], undefined);
  });

  it('retries a receiver that hangs past timeout, while another endpoint gets its events meanwhile', async () => {
    await pushImage(wharf.base, 'hooks/hang', 'v1');
    const ids = await outboxIds('hooks/hang');
    assert.equal(ids.length, 3);
    await eventually(() => assert.equal(forRepo(r.quick!, 'hooks/hang').length, 3));
    // The quick endpoint got everything while the hanging endpoint's first attempts were still open.
    assert.ok(r.hang!.hanging > 0 || forRepo(r.hang!, 'hooks/hang').length < 3, 'quick endpoint did not wait for the hanging one');
    await eventually(() => assert.deepEqual(new Set(forRepo(r.hang!, 'hooks/hang').map((e) => e.id)), new Set(ids)), 15_000);
    for (const id of ids) {
      // The receiver has the retry's body before the worker records its 200 (after the POST returns).
      await eventually(async () => assert.equal((await webhooks.attemptsOf(wharf.database.db, 'hang', id)).length, 2));
      const rows = await webhooks.attemptsOf(wharf.database.db, 'hang', id);
      assert.match(rows[0]!.error!, /timed out after 1000 ms/);
      assert.equal(rows[0]!.status, null);
      assert.equal(rows[1]!.status, 200);
    }
  });

  it('dead-letters after maxattempts, shows it in the admin view, and redrives it', async () => {
    await pushBlob(wharf.base, 'hooks/dead', randomBlob(100));
    const [id] = await outboxIds('hooks/dead');
    const letter = await eventually(() => wharf.database.db.selectFrom('webhook_dead_letters').selectAll().where('event_id', '=', id!).executeTakeFirstOrThrow());
    assert.equal(letter.attempts, 2);
    assert.match(letter.last_error!, /HTTP 503/);
    const dead = await eventually(async () => {
      const res = await fetch(`${wharf.base}/_wharf/admin/webhooks`);
      assert.equal(res.status, 200);
      const body = (await res.json()) as { endpoints: Array<Record<string, any>> };
      const d = body.endpoints.find((e) => e.name === 'dead')!;
      assert.ok(d.deadLettered >= 1, 'dead letters counted');
      return { d, body };
    });
    assert.equal(dead.d.configured, true);
    assert.equal(dead.d.url, r.dead!.url);
    assert.match(dead.d.lastError.message, /^HTTP 503/);
    assert.equal(dead.d.lastError.status, 503);
    const off = dead.body.endpoints.find((e) => e.name === 'off')!;
    assert.equal(off.disabled, true);
    assert.equal(off.pending + off.delivered + off.deadLettered, 0, 'a disabled endpoint gets nothing');

    deadOpen = true;
    // Embedded, the CLI finds the running PostgreSQL through the data directory.
    const cli = await new Promise<{ code: number | null; out: string }>((resolve) => {
      const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, ...(wharf.databaseUrl ? { WHARF_DATABASE_URL: wharf.databaseUrl } : { WHARF_DATA_DIR: wharf.dataDir }) };
      const child = spawn(process.execPath, [WHARF_MAIN, 'webhooks', 'redrive', '--endpoint', 'dead', '--event', id!], { env });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (out += d.toString()));
      child.on('exit', (code) => resolve({ code, out }));
    });
    assert.equal(cli.code, 0, cli.out);
    assert.match(cli.out, /redriven: 1 dead-lettered delivery back to pending/);
    wharf.relay.wake();
    await eventually(() => assert.ok(r.dead!.deliveredIds().has(id!), 'redriven event delivered'), 15_000);
    await eventually(async () => {
      const rows = await webhooks.endpointCounts(wharf.database.db);
      const d = rows.find((x) => x.endpoint === 'dead')!;
      assert.ok(d.delivered >= 1, 'delivered counted');
      return d;
    });
    assert.equal(await wharf.database.db.selectFrom('webhook_dead_letters').select('id').where('event_id', '=', id!).executeTakeFirst(), undefined);
  });

  it('exports Prometheus counters per endpoint', async () => {
    const text = await (await fetch(`${wharf.base}/metrics`)).text();
    assert.match(text, /wharf_webhook_attempts_total\{endpoint="flaky",outcome="failed"\} \d+/);
    assert.match(text, /wharf_webhook_attempts_total\{endpoint="flaky",outcome="delivered"\} \d+/);
    assert.match(text, /wharf_webhook_queued_total\{endpoint="quick"\} \d+/);
    assert.match(text, /wharf_webhook_dead_lettered_total\{endpoint="dead"\} \d+/);
  });
});

describe('notifications.endpoints validation', () => {
  const load = (endpoints: unknown) => loadConfig({ env: { WHARF_NOTIFICATIONS_ENDPOINTS: JSON.stringify(endpoints) } });
  it("accepts Distribution's keys", () => {
    const config = load([
      {
        name: 'a',
        url: 'https://x.example/hook',
        headers: { Authorization: ['Bearer t'] },
        timeout: '500ms',
        threshold: 5,
        backoff: '1s',
        disabled: false,
        ignoredmediatypes: ['application/octet-stream'],
        ignore: { mediatypes: ['text/plain'], actions: ['pull'] },
        maxattempts: 3,
        secret: 's',
      },
    ]);
    assert.equal((config['notifications.endpoints'] as unknown[]).length, 1);
  });
  for (const [what, endpoints, message] of [
    ['an unknown key', [{ name: 'a', url: 'http://x/', retries: 3 }], /endpoint "a": unknown key retries/],
    ['a missing url', [{ name: 'a' }], /endpoint "a": url must be/],
    ['a non-http url', [{ name: 'a', url: 'ftp://x/' }], /url must be http or https/],
    ['a bad duration', [{ name: 'a', url: 'http://x/', timeout: 500 }], /timeout must be a duration/],
    [
      'a repeated name',
      [
        { name: 'a', url: 'http://x/' },
        { name: 'a', url: 'http://y/' },
      ],
      /used twice/,
    ],
    ['an unknown action', [{ name: 'a', url: 'http://x/', ignore: { actions: ['fetch'] } }], /unknown action "fetch"/],
    ['an unknown ignore key', [{ name: 'a', url: 'http://x/', ignore: { tags: [] } }], /unknown key ignore.tags/],
    ['a bad name', [{ name: 'a b', url: 'http://x/' }], /name is required/],
    ['not a list', { name: 'a' }, /must be a list/],
  ] as const) {
    it(`refuses ${what}`, () => {
      assert.throws(
        () => load(endpoints),
        (err: Error) => err instanceof ConfigError && message.test(err.message) && err.message.includes('notifications.endpoints'),
      );
    });
  }
});
