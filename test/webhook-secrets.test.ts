/**
 * Webhook URLs that carry secrets: user:pass@ becomes a Basic Authorization header (as in
 * Distribution) instead of making every delivery fail; neither the password nor a token in the
 * query string is ever shown or stored: not in the admin view, not in webhook_attempts, not in
 * dead letters, not in the logs, not in a start-up error.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { ConfigError, loadConfig } from '../libs/config/index.js';
import { createLogger } from '../libs/log/index.js';
import { pushImage } from './helpers/oci.js';
import { startTestWharf, type TestWharf } from './helpers/server.js';
import { eventually } from './helpers/wait.js';
import { startReceiver, type WebhookReceiver } from './helpers/webhook-receiver.js';

const PASSWORD = 'pa:ss@w0rd/%';
const TOKEN = 'tok-7f3a9c21';
const SECRETS = [PASSWORD, encodeURIComponent(PASSWORD), TOKEN];

let wharf: TestWharf;
let good: WebhookReceiver;
let echo: Server;
let echoUrl: string;
const logLines: string[] = [];

function withSecrets(url: string): string {
  const u = new URL(url);
  u.username = 'alice';
  u.password = encodeURIComponent(PASSWORD);
  u.search = `?token=${TOKEN}`;
  return u.toString();
}

function assertNoSecret(text: string, where: string): void {
  for (const s of SECRETS) assert.ok(!text.includes(s), `${where} shows a secret (${s}): ${text.slice(0, 500)}`);
}

before(async () => {
  good = await startReceiver();
  // A receiver that refuses and echoes back what it was sent, secrets included.
  echo = createServer((req, res) => {
    req.resume();
    res
      .writeHead(500, { 'content-type': 'text/plain' })
      .end(`refused ${req.url} with ${req.headers.authorization} (${Buffer.from(String(req.headers.authorization).slice(6), 'base64').toString()})`);
  });
  await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', () => resolve()));
  echoUrl = `http://127.0.0.1:${(echo.address() as AddressInfo).port}/hook`;
  const sink = new Writable({
    write(chunk, _enc, done) {
      logLines.push(String(chunk));
      done();
    },
  });
  wharf = await startTestWharf(
    {
      'log.level': 'debug',
      'notifications.endpoints': [
        { name: 'good', url: withSecrets(good.url), backoff: '20ms', maxbackoff: '100ms' },
        { name: 'echo', url: withSecrets(echoUrl), backoff: '20ms', maxbackoff: '100ms', maxattempts: 2 },
      ],
    },
    { logger: createLogger('debug', {}, sink) },
  );
});

after(async () => {
  await wharf?.close();
  await good?.down();
  echo?.closeAllConnections();
  await new Promise((resolve) => (echo ? echo.close(resolve) : resolve(undefined)));
});

describe('webhook URLs with credentials', () => {
  it('user:pass@ is sent as Basic auth, the query as it is, and the delivery succeeds', async () => {
    const image = await pushImage(wharf.base, 'secrets/app', 'v1');
    const request = await eventually(() => {
      const r = good.requests.find((x) => x.status === 200 && x.events.some((e) => e.target.digest === image.digest));
      assert.ok(r, 'delivered');
      return r;
    }, 30_000);
    assert.equal(request.headers.authorization, `Basic ${Buffer.from(`alice:${PASSWORD}`).toString('base64')}`);
  });

  it('a refusing receiver that echoes the secrets: attempts, dead letters, admin view and logs show none of them', async () => {
    await pushImage(wharf.base, 'secrets/echo', 'v1');
    await eventually(async () => {
      const dead = await wharf.database.db.selectFrom('webhook_dead_letters').select(['last_error']).where('endpoint', '=', 'echo').execute();
      assert.ok(dead.length > 0, 'dead-lettered');
    }, 30_000);
    const attempts = await wharf.database.db.selectFrom('webhook_attempts').select(['error']).where('endpoint', '=', 'echo').execute();
    assert.ok(attempts.length > 0);
    for (const a of attempts) assertNoSecret(String(a.error), 'webhook_attempts.error');
    const dead = await wharf.database.db.selectFrom('webhook_dead_letters').select(['last_error']).execute();
    for (const d of dead) assertNoSecret(String(d.last_error), 'webhook_dead_letters.last_error');
    const admin = await fetch(`${wharf.url}/_wharf/admin/webhooks`);
    assertNoSecret(await admin.text(), '/_wharf/admin/webhooks');
    assertNoSecret(logLines.join(''), 'the log');
  });

  it('a start-up error about a webhook URL does not print its secrets', () => {
    try {
      loadConfig({ env: { WHARF_NOTIFICATIONS_ENDPOINTS: JSON.stringify([{ name: 'x', url: `ftp://alice:${encodeURIComponent(PASSWORD)}@host/hook?token=${TOKEN}` }]) } });
      assert.fail('accepted');
    } catch (err) {
      assert.ok(err instanceof ConfigError, String(err));
      assertNoSecret(err.message, 'the config error');
    }
  });
});
