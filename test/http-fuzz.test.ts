/**
 * A bounded generative test of the HTTP surface (fast-check): random repository names, tags,
 * digests, ranges, headers, bodies, body cut points and connection drops against a running
 * registry. Whatever arrives: no 5xx, no hang, and afterwards no connection left idle in a
 * transaction and the registry still serving. WHARF_TEST_FUZZ_RUNS sets the number of requests
 * (default 150, about a minute here); raise it for a longer run.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { sql } from 'kysely';
import { behindTestProxy, startTestWharf, type TestWharf } from './helpers/server.js';
import { pushImage } from './helpers/oci.js';
import { rawRequest, type RawRequest } from './helpers/raw-http.js';
import { eventually } from './helpers/wait.js';

const RUNS = Number(process.env.WHARF_TEST_FUZZ_RUNS ?? 150);

let wharf: TestWharf;
let known: { name: string; digest: string };

before(async () => {
  wharf = await startTestWharf({ 'database.uploadpoolsize': 4 });
  const image = await pushImage(wharf.base, 'fuzz/known', 'v1');
  known = { name: 'fuzz/known', digest: image.digest };
});
after(async () => wharf?.close());

const hex = fc.stringMatching(/^[0-9a-f]{64}$/);
const nasty = fc.constantFrom('', '%00', '%ED%A0%80', '..', '%2F', '%', 'A', '-', '_', '.', '~', '%F0%9F%90%B3', 'x'.repeat(300));
const segment = fc.oneof(fc.stringMatching(/^[a-z0-9]{1,8}$/), nasty, fc.string({ maxLength: 12 }).map(encodeURIComponent));
const name = fc.oneof(
  fc.constant('fuzz/known'),
  fc.array(segment, { minLength: 1, maxLength: 3 }).map((s) => s.join('/')),
);
const digest = fc.oneof(
  fc.constant('KNOWN'),
  hex.map((h) => `sha256:${h}`),
  fc.constantFrom('sha256:', 'sha512:abc', 'md5:00', 'sha256:%00', ''),
  segment,
);
const reference = fc.oneof(digest, fc.stringMatching(/^[A-Za-z0-9_.-]{1,20}$/), nasty);
const query = fc.array(
  fc.tuple(fc.constantFrom('n', 'last', 'digest', 'mount', 'from', 'artifactType', 'annotation', 'tagged'), fc.oneof(segment, fc.integer({ min: -5, max: 100000 }).map(String))),
  { maxLength: 3 },
);
const header = fc.oneof(
  fc.tuple(fc.constant('Range'), fc.oneof(fc.constantFrom('bytes=0-', 'bytes=-1', 'bytes=5-2', 'bytes=99999999-', 'items=1-2', 'bytes=0-0,2-3'), segment)),
  fc.tuple(fc.constant('Content-Range'), fc.oneof(fc.constantFrom('0-0', '0-99', '5-2', 'bytes 0-9/*', '-'), segment)),
  fc.tuple(
    fc.constant('Content-Type'),
    fc.constantFrom('application/vnd.oci.image.manifest.v1+json', 'application/vnd.oci.image.index.v1+json', 'application/json', 'text/plain', ''),
  ),
  fc.tuple(fc.constant('Accept'), fc.constantFrom('*/*', 'application/vnd.oci.image.manifest.v1+json', '')),
  fc.tuple(fc.constant('If-None-Match'), fc.constantFrom('"x"', '*', '')),
);

interface Case {
  method: string;
  path: string;
  headers: Array<[string, string]>;
  body: Uint8Array;
  lie: number;
  end: 'wait' | 'end' | 'destroy';
  chunked: boolean;
}

const pathOf = fc.oneof(
  fc.tuple(name, reference).map(([n, r]) => `/v2/${n}/manifests/${r}`),
  fc.tuple(name, digest).map(([n, d]) => `/v2/${n}/blobs/${d}`),
  name.map((n) => `/v2/${n}/blobs/uploads/`),
  fc.tuple(name, fc.oneof(fc.uuid(), segment)).map(([n, id]) => `/v2/${n}/blobs/uploads/${id}`),
  name.map((n) => `/v2/${n}/tags/list`),
  fc.tuple(name, digest).map(([n, d]) => `/v2/${n}/referrers/${d}`),
  fc.constantFrom('/v2/', '/v2/_catalog', '/v2/_wharf/repositories', '/v2/_oci/ext/discover'),
  name.map((n) => `/v2/${n}/_wharf/manifests`),
  name.map((n) => `/v2/${n}/_wharf/tags`),
  segment.map((s) => `/${s}`),
);

const cases: fc.Arbitrary<Case> = fc.record({
  method: fc.constantFrom('GET', 'HEAD', 'PUT', 'POST', 'PATCH', 'DELETE', 'OPTIONS'),
  path: fc.tuple(pathOf, query).map(([p, q]) => (q.length ? `${p}?${q.map(([k, v]) => `${k}=${v}`).join('&')}` : p)),
  headers: fc.array(header, { maxLength: 3 }),
  body: fc.oneof(
    fc.constant(new Uint8Array(0)),
    fc.uint8Array({ maxLength: 4096 }),
    fc.constant(new TextEncoder().encode('{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[]}')),
  ),
  // Declared length minus sent length: 0 honest, > 0 a body cut short.
  lie: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 5000 })),
  end: fc.constantFrom('wait', 'wait', 'end', 'destroy'),
  chunked: fc.boolean(),
});

async function idleInTransaction(): Promise<number> {
  const { rows } = await sql<{ n: number }>`select count(*)::int as n from pg_stat_activity
    where datname = current_database() and state like 'idle in transaction%' and pid <> pg_backend_pid()`.execute(wharf.database.db);
  return rows[0]!.n;
}

describe('generated requests', () => {
  it(`${RUNS} random requests: no 5xx, no hang, nothing left holding a connection`, { timeout: 600_000 }, async () => {
    const url = new URL(wharf.base);
    const prefix = url.pathname === '/' ? '' : url.pathname;
    await fc.assert(
      fc.asyncProperty(cases, async (c) => {
        const path = c.path.replaceAll('KNOWN', known.digest);
        const headers: Record<string, string> = {};
        for (const [k, v] of c.headers) headers[k] = v;
        const request: RawRequest = { url: `${url.origin}${prefix}${path}`, method: c.method, headers, after: c.end, timeoutMs: 120_000 };
        if (c.body.length > 0 || c.lie > 0) {
          if (c.chunked && c.lie === 0) request.chunked = true;
          else headers['Content-Length'] = String(c.body.length + c.lie);
          request.body = Buffer.from(c.body);
        }
        // A body cut short with the socket left open would wait for http.bodytimeout: close it instead.
        if (c.lie > 0 && c.end === 'wait') request.after = 'end';
        const result = await rawRequest(request);
        if (result.response) assert.ok(result.response.status < 500, `${c.method} ${path} answered ${result.response.status}: ${result.response.body.toString().slice(0, 300)}`);
        else if (request.after === 'wait' && !behindTestProxy()) assert.fail(`${c.method} ${path}: no answer`);
      }),
      { numRuns: RUNS, endOnFailure: true },
    );
    await eventually(async () => assert.equal(await idleInTransaction(), 0, 'connections left idle in transaction'), 30_000);
    assert.equal((await fetch(`${wharf.base}/readyz`)).status, 200);
    assert.equal((await fetch(`${wharf.base}/v2/${known.name}/manifests/v1`, { method: 'HEAD' })).status, 200);
  });
});
