/**
 * Upload bodies that die: a client that drops the connection, half-closes it, sends bytes past
 * its body or a malformed chunked body, at any moment (also before the upload code has read a
 * byte). Each must roll its transaction back at once: no connection left idle in transaction
 * holding the session's row lock, the session resumable, no session left by POST ?digest=, the
 * upload pool free for the next client, /readyz honest and SIGTERM prompt.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { startTestWharf, type TestWharf } from './helpers/server.js';
import { pushBlob, randomBlob, type Blob } from './helpers/oci.js';
import { rawRequest, type RawRequest } from './helpers/raw-http.js';
import { eventually } from './helpers/wait.js';

const POOL = 3;

let wharf: TestWharf;
let base: string;

before(async () => {
  wharf = await startTestWharf({ 'database.uploadpoolsize': POOL });
  base = wharf.base;
});
after(async () => wharf?.close());

let counter = 0;
const repo = (what: string) => `drops/${what}-${++counter}`;

/** Connections of this registry's database that sit in an open transaction doing nothing. */
async function idleInTransaction(): Promise<number> {
  const { rows } = await sql<{ n: number }>`select count(*)::int as n from pg_stat_activity
    where datname = current_database() and state like 'idle in transaction%' and pid <> pg_backend_pid()`.execute(wharf.database.db);
  return rows[0]!.n;
}

async function untilNoneIdleInTransaction(what: string): Promise<void> {
  // The backstop (idle_in_transaction_session_timeout) is minutes away: only the fix ends these promptly.
  await eventually(async () => assert.equal(await idleInTransaction(), 0, `${what}: connections left idle in transaction`), 20_000);
}

async function openSession(name: string, first: Buffer): Promise<string> {
  const post = await fetch(`${base}/v2/${name}/blobs/uploads/`, { method: 'POST' });
  assert.equal(post.status, 202);
  const location = new URL(post.headers.get('location')!, base).toString();
  const patch = await fetch(location, { method: 'PATCH', headers: { 'content-type': 'application/octet-stream' }, body: new Uint8Array(first) });
  assert.equal(patch.status, 202, await patch.text());
  return new URL(patch.headers.get('location')!, base).toString();
}

async function assertResumable(url: string, name: string, blob: Blob, offset: number, what: string): Promise<void> {
  const status = await fetch(url);
  assert.equal(status.status, 204, `${what}: session status`);
  assert.equal(status.headers.get('range'), `0-${offset - 1}`, `${what}: session offset`);
  const put = await fetch(`${url}${url.includes('?') ? '&' : '?'}digest=${blob.digest}`, {
    method: 'PUT',
    headers: { 'content-type': 'application/octet-stream', 'content-range': `${offset}-${blob.size - 1}` },
    body: new Uint8Array(blob.bytes.subarray(offset)),
  });
  assert.equal(put.status, 201, `${what}: finishing the session: ${await put.text()}`);
  const got = await fetch(`${base}/v2/${name}/blobs/${blob.digest}`);
  assert.equal(got.status, 200);
  assert.deepEqual(Buffer.from(await got.arrayBuffer()), blob.bytes);
}

type Death = 'destroy' | 'half-close' | 'bytes-after-body' | 'bad-chunk';
const DEATHS: Death[] = ['destroy', 'half-close', 'bytes-after-body', 'bad-chunk'];

/** A request whose body dies the way `death` says, sent without waiting for the server to read any of it. */
function dyingRequest(url: string, method: string, death: Death, bytes: Buffer): RawRequest {
  const headers = { 'Content-Type': 'application/octet-stream' };
  switch (death) {
    case 'destroy':
      return { url, method, headers: { ...headers, 'Content-Length': String(bytes.length + 10_000) }, body: bytes.subarray(0, 5), after: 'destroy' };
    case 'half-close':
      return { url, method, headers: { ...headers, 'Content-Length': String(bytes.length + 10_000) }, body: bytes.subarray(0, 5), after: 'end' };
    case 'bytes-after-body':
      // A complete body, then garbage where the next request would start.
      return { url, method, headers: { ...headers, 'Content-Length': '5' }, body: [bytes.subarray(0, 5), Buffer.from('\x00\x01 not http\r\n\r\n')], after: 'end' };
    case 'bad-chunk':
      return { url, method, headers: { ...headers, 'Transfer-Encoding': 'chunked' }, body: Buffer.from('5\r\nab'), after: 'end' };
  }
}

describe('upload bodies that die before or while the server reads them', () => {
  for (const death of DEATHS) {
    it(`PATCH, ${death}, ${2 * POOL} times: pool free, session resumable`, async () => {
      const name = repo(`patch-${death}`);
      const blob = randomBlob(40_000);
      const url = await openSession(name, blob.bytes.subarray(0, 1000));
      await Promise.all(Array.from({ length: 2 * POOL }, () => rawRequest({ ...dyingRequest(url, 'PATCH', death, blob.bytes.subarray(1000)), timeoutMs: 60_000 })));
      await untilNoneIdleInTransaction(`PATCH ${death}`);
      // A normal upload elsewhere still gets an upload connection.
      assert.equal((await pushBlob(base, repo('after-patch'), randomBlob(5000))).status, 201);
      await assertResumable(url, name, blob, 1000, `PATCH ${death}`);
    });

    it(`final PUT ?digest=, ${death}, ${2 * POOL} times: pool free, session resumable, no blob`, async () => {
      const name = repo(`put-${death}`);
      const blob = randomBlob(40_000);
      const url = await openSession(name, blob.bytes.subarray(0, 1000));
      await Promise.all(
        Array.from({ length: 2 * POOL }, () =>
          rawRequest({ ...dyingRequest(`${url}${url.includes('?') ? '&' : '?'}digest=${blob.digest}`, 'PUT', death, blob.bytes.subarray(1000)), timeoutMs: 60_000 }),
        ),
      );
      await untilNoneIdleInTransaction(`PUT ${death}`);
      assert.equal((await fetch(`${base}/v2/${name}/blobs/${blob.digest}`, { method: 'HEAD' })).status, 404);
      assert.equal((await pushBlob(base, repo('after-put'), randomBlob(5000))).status, 201);
      await assertResumable(url, name, blob, 1000, `PUT ${death}`);
    });

    it(`monolithic POST ?digest=, ${death}, ${2 * POOL} times: pool free, no session left`, async () => {
      const name = repo(`post-${death}`);
      const blob = randomBlob(40_000);
      await Promise.all(
        Array.from({ length: 2 * POOL }, () =>
          rawRequest({ ...dyingRequest(`${base}/v2/${name}/blobs/uploads/?digest=${blob.digest}`, 'POST', death, blob.bytes), timeoutMs: 60_000 }),
        ),
      );
      await untilNoneIdleInTransaction(`POST ${death}`);
      await eventually(async () => {
        const sessions = await wharf.database.db.selectFrom('uploads').select('id').where('repository', '=', name).execute();
        assert.deepEqual(sessions, [], `POST ${death}: sessions left behind`);
      }, 20_000);
      assert.equal((await pushBlob(base, name, blob)).status, 201);
    });
  }

  it('/readyz stays honest and a normal push succeeds after a storm of drops on every kind of request', async () => {
    const blob = randomBlob(20_000);
    const name = repo('storm');
    const url = await openSession(name, blob.bytes.subarray(0, 100));
    const requests: RawRequest[] = [];
    for (const death of DEATHS) {
      requests.push(dyingRequest(url, 'PATCH', death, blob.bytes.subarray(100)));
      requests.push(dyingRequest(`${base}/v2/${name}/blobs/uploads/?digest=${blob.digest}`, 'POST', death, blob.bytes));
    }
    await Promise.all(requests.map((r) => rawRequest({ ...r, timeoutMs: 60_000 })));
    await untilNoneIdleInTransaction('storm');
    const ready = await fetch(`${base}/readyz`);
    assert.equal(ready.status, 200);
    await assertResumable(url, name, blob, 100, 'storm');
  });
});

describe('server-side backstops', () => {
  it('every pool sets idle_in_transaction_session_timeout, statement_timeout and lock_timeout', async () => {
    for (const [pool, db] of [
      ['queries', wharf.database.db],
      ['uploads', wharf.database.uploadsDb],
    ] as const) {
      for (const setting of ['idle_in_transaction_session_timeout', 'statement_timeout', 'lock_timeout']) {
        const { rows } = await sql<{ v: string }>`select current_setting(${setting}) as v`.execute(db);
        assert.notEqual(rows[0]!.v, '0', `${pool} pool: ${setting} is off`);
      }
    }
  });

  it('a transaction left idle is ended by the server, and its connection is not reused broken', async () => {
    // The backstop is what catches a bug of ours: a short one here, on a registry of its own.
    const short = await startTestWharf({ 'database.idletransactiontimeout': 1 });
    try {
      await assert.rejects(
        short.database.db.transaction().execute(async (trx) => {
          await sql`select 1`.execute(trx);
          // Idle in transaction until the server ends the session.
          await eventually(async () => {
            const { rows } = await sql<{ n: number }>`select count(*)::int as n from pg_stat_activity
              where datname = current_database() and state like 'idle in transaction%'`.execute(short.database.db);
            assert.equal(rows[0]!.n, 0);
          }, 30_000);
          await sql`select 1`.execute(trx);
        }),
      );
      assert.equal((await pushBlob(short.base, 'backstop/after', randomBlob(1000))).status, 201);
    } finally {
      await short.close();
    }
  });

  it("an upload body that keeps arriving outlives the upload pool's idle-in-transaction timeout", async () => {
    // Upload connections may idle 1 + 2 s between statements; this body takes longer than that in all.
    const short = await startTestWharf({ 'database.idletransactiontimeout': 1, 'http.bodytimeout': 2 });
    try {
      const blob = randomBlob(64 * 1024);
      const pieces: Buffer[] = [];
      for (let at = 0; at < blob.size; at += 4096) pieces.push(blob.bytes.subarray(at, at + 4096));
      const post = await fetch(`${short.base}/v2/backstop/slow/blobs/uploads/`, { method: 'POST' });
      const location = new URL(post.headers.get('location')!, short.base).toString();
      const result = await rawRequest({
        url: `${location}${location.includes('?') ? '&' : '?'}digest=${blob.digest}`,
        method: 'PUT',
        headers: { 'Content-Type': 'application/octet-stream' },
        chunked: true,
        body: pieces,
        // A slow client: a piece every 250 ms, about 4 s in all.
        pace: () => new Promise((r) => setTimeout(r, 250)),
        timeoutMs: 120_000,
      });
      assert.equal(result.response?.status, 201, result.response?.body.toString());
    } finally {
      await short.close();
    }
  });
});

describe('shutdown after drops', () => {
  it('close() completes with no request left holding a connection', { timeout: 120_000 }, async () => {
    // A shutdown deadline of an hour: only requests that have all ended let close() finish.
    const own = await startTestWharf({ 'database.uploadpoolsize': POOL, 'http.shutdowntimeout': 3600 });
    let closed = false;
    try {
      const name = 'drops/shutdown';
      const blob = randomBlob(20_000);
      const post = await fetch(`${own.base}/v2/${name}/blobs/uploads/`, { method: 'POST' });
      const url = new URL(post.headers.get('location')!, own.base).toString();
      await Promise.all(DEATHS.flatMap((death) => [1, 2].map(() => rawRequest({ ...dyingRequest(url, 'PATCH', death, blob.bytes), timeoutMs: 60_000 }))));
      await own.close();
      closed = true;
    } finally {
      if (!closed) await own.close();
    }
  });
});
