/**
 * Shared by the bad-input suites (test/bad-input/): a registry per test file, snapshots of what a
 * refused request must not change, OCI error-body checks, and upload-session steps.
 */
import assert from 'node:assert/strict';
import { readdir, stat } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { join } from 'node:path';
import { sql } from 'kysely';
import { blobRow as blobRowIn, imageManifest } from './gc.js';
import { blobOf, pushBlob, randomBlob, sha256, type Blob } from './oci.js';
import { rawErrorCode, type RawResult } from './raw-http.js';
import { behindTestProxy, startTestWharf, type TestWharf } from './server.js';
import { eventually } from './wait.js';

export { imageManifest };

export const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
export const MANIFEST_LIMIT = 4 * 1024 * 1024;

let wharf: TestWharf;

/** Every request the (embedded) server received, with its response: how it answered a client that hung up. */
const seen: Array<{ method: string; url: string; res: ServerResponse }> = [];

/**
 * Starts the suite's registry (once per test file: each file runs in its own process) and
 * returns its base URL; the helpers below act on it.
 */
export async function startBadInputWharf(): Promise<string> {
  wharf = await startTestWharf();
  // Cluster mode: app is only the first of two nodes behind the proxy, so nothing is observed there.
  if (wharf.mode === 'embedded') wharf.app.server.on('request', (req, res) => seen.push({ method: req.method ?? '', url: req.url ?? '', res }));
  return wharf.base;
}

export async function closeBadInputWharf(): Promise<void> {
  await wharf?.close();
}

/**
 * The status the server settled on for the latest `method` request of `url` — what it would have
 * answered had the client stayed (the client that hung up never sees it). Undefined in cluster mode.
 */
export async function serverStatus(method: string, url: string): Promise<number | undefined> {
  if (behindTestProxy()) return undefined;
  const target = new URL(url);
  const path = `${target.pathname}${target.search}`;
  const find = () => [...seen].reverse().find((s) => s.method === method && s.url === path);
  try {
    // The default 200 stays until the handler (or error handler) sets a status; on a loaded
    // machine the rollback before that can take seconds. With a message: without one, a failing
    // assert.ok reads the source to build it, slowly enough to starve the server in this process.
    await eventually(() => assert.ok(find() && find()!.res.statusCode !== 200, 'status settled'), 30_000);
  } catch {
    /* still 200 (or never seen): reported as such */
  }
  return find()?.res.statusCode;
}

/** The server classed a hung-up request as the client's fault (4xx), not its own (5xx). */
export async function assertServerRefused(method: string, url: string, what: string): Promise<void> {
  const status = await serverStatus(method, url);
  if (status === undefined) return;
  assert.ok(status >= 400 && status < 500, `${what}: the server answered the hung-up request with ${status}, not a 4xx`);
}

/** When a half-closed client still gets an answer, it must be OCI error JSON like any other. */
export function assertAnswerIfAny(result: RawResult, status: number, code: string, what: string): void {
  if (result.response) expectRawError(result, status, code, `${what} (answer to the half-closed client)`);
}

// ---------------------------------------------------------------------------------------------
// State: what a refused request must not change
// ---------------------------------------------------------------------------------------------

const TABLES = ['repositories', 'manifests', 'manifest_references', 'tags', 'tag_history', 'blobs', 'repository_blobs', 'uploads', 'outbox'] as const;

export interface Snapshot {
  rows: Record<string, number>;
  /** Files under <dataDir>/blobs (embedded mode; empty in cluster mode, where blobs are in S3). */
  files: string[];
}

export async function blobFiles(): Promise<string[]> {
  if (!wharf.dataDir) return [];
  const root = join(wharf.dataDir, 'blobs');
  let entries: string[];
  try {
    entries = await readdir(root, { recursive: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const files: string[] = [];
  for (const entry of entries) {
    const s = await stat(join(root, entry)).catch(() => undefined);
    if (s?.isFile()) files.push(entry);
  }
  return files.sort();
}

export async function snapshot(): Promise<Snapshot> {
  const rows: Record<string, number> = {};
  for (const table of TABLES) {
    const { rows: r } = await sql<{ n: number }>`select count(*)::int as n from ${sql.table(table)}`.execute(wharf.database.db);
    rows[table] = r[0]!.n;
  }
  return { rows, files: await blobFiles() };
}

/** Asserts that no row was added or removed in any table and no blob-store file appeared or vanished. */
export async function assertUnchanged(before: Snapshot, what: string): Promise<void> {
  const now = await snapshot();
  assert.deepEqual(now.rows, before.rows, `${what}: metadata rows changed`);
  assert.deepEqual(now.files, before.files, `${what}: files under <dataDir>/blobs changed`);
}

export async function uploadRowsFor(repository: string) {
  return wharf.database.db.selectFrom('uploads').select(['id', 'storage_key', 'byte_offset']).where('repository', '=', repository).execute();
}

export async function repositoryExists(name: string): Promise<boolean> {
  return (await wharf.database.db.selectFrom('repositories').select('id').where('name', '=', name).executeTakeFirst()) !== undefined;
}

export async function blobRow(digest: string) {
  return blobRowIn(wharf.database.db, digest);
}

// ---------------------------------------------------------------------------------------------
// Error responses
// ---------------------------------------------------------------------------------------------

export interface ErrorBody {
  errors: Array<{ code: string; message: string; detail?: unknown }>;
}

export function mediaTypeOf(contentType: string | null | undefined): string | undefined {
  return contentType?.split(';')[0]?.trim().toLowerCase();
}

export function checkErrorBody(text: string, code: string, what: string): ErrorBody {
  let body: ErrorBody;
  try {
    body = JSON.parse(text) as ErrorBody;
  } catch {
    assert.fail(`${what}: body is not JSON: ${JSON.stringify(text.slice(0, 300))}`);
  }
  assert.ok(Array.isArray(body.errors) && body.errors.length > 0, `${what}: no errors array in ${text.slice(0, 300)}`);
  for (const e of body.errors) {
    assert.equal(typeof e.code, 'string', `${what}: error without a code`);
    assert.equal(typeof e.message, 'string', `${what}: error without a message`);
  }
  assert.equal(body.errors[0]!.code, code, `${what}: error code (body ${text.slice(0, 300)})`);
  return body;
}

/** A fetch response that must be `status` with OCI error JSON whose first code is `code`. */
export async function expectError(res: Response, status: number, code: string, what: string): Promise<ErrorBody> {
  const text = await res.text();
  assert.equal(res.status, status, `${what}: status (body ${text.slice(0, 300)})`);
  assert.equal(res.headers.get('docker-distribution-api-version'), 'registry/2.0', `${what}: API version header`);
  assert.equal(mediaTypeOf(res.headers.get('content-type')), 'application/json', `${what}: Content-Type`);
  return checkErrorBody(text, code, what);
}

/** A HEAD response has no body: only the status (and the API version header) can be checked. */
export async function expectHeadError(res: Response, status: number, what: string): Promise<void> {
  assert.equal(res.status, status, `${what}: status`);
  assert.equal(res.headers.get('docker-distribution-api-version'), 'registry/2.0', `${what}: API version header`);
  assert.equal((await res.arrayBuffer()).byteLength, 0, `${what}: HEAD answered with a body`);
}

export function expectRawError(result: RawResult, status: number, code: string, what: string): ErrorBody {
  const res = result.response;
  assert.ok(res, `${what}: no response (socket error: ${result.socketError?.message ?? 'none'})`);
  assert.equal(res.status, status, `${what}: status (body ${res.body.toString('utf8').slice(0, 300)})`);
  assert.equal(res.headers['docker-distribution-api-version'], 'registry/2.0', `${what}: API version header`);
  assert.equal(mediaTypeOf(res.headers['content-type']), 'application/json', `${what}: Content-Type`);
  assert.equal(rawErrorCode(res), code, `${what}: error code`);
  return checkErrorBody(res.body.toString('utf8'), code, what);
}

// ---------------------------------------------------------------------------------------------
// Upload sessions
// ---------------------------------------------------------------------------------------------

let repoCounter = 0;
/** A fresh repository name per test, so tests never see each other's state. */
export function repo(prefix: string): string {
  return `bad-input/${prefix}-${++repoCounter}`;
}

export function absolute(location: string): string {
  return `${wharf.url}${location}`;
}

export function sessionId(url: string): string {
  return url.slice(url.lastIndexOf('/') + 1);
}

export function uploadRange(offset: number): string {
  return `0-${Math.max(offset - 1, 0)}`;
}

/** POSTs a new session and, given `first`, PATCHes it as the chunk at offset 0; returns the session URL. */
export async function openSession(name: string, first?: Buffer<ArrayBuffer>): Promise<string> {
  const post = await fetch(`${wharf.base}/v2/${name}/blobs/uploads/`, { method: 'POST' });
  assert.equal(post.status, 202, `POST session: ${await post.text()}`);
  let url = absolute(post.headers.get('location')!);
  if (first) {
    const patch = await fetch(url, {
      method: 'PATCH',
      headers: { 'content-type': 'application/octet-stream', 'content-range': `0-${first.length - 1}` },
      body: first,
    });
    assert.equal(patch.status, 202, `PATCH first chunk: ${await patch.text()}`);
    assert.equal(patch.headers.get('range'), uploadRange(first.length));
    url = absolute(patch.headers.get('location')!);
  }
  return url;
}

/** The session answers GET with 204 and the Range of `offset` bytes. */
export async function assertSessionAt(url: string, offset: number, what: string): Promise<void> {
  const res = await fetch(url);
  assert.equal(res.status, 204, `${what}: upload status (${await res.text()})`);
  assert.equal(res.headers.get('range'), uploadRange(offset), `${what}: session offset`);
  assert.equal(res.headers.get('docker-upload-uuid'), sessionId(url));
}

export async function assertSessionGone(url: string, what: string): Promise<void> {
  await expectError(await fetch(url), 404, 'BLOB_UPLOAD_UNKNOWN', `${what}: session after`);
}

/** Sends the rest of `blob` from `offset` as one PATCH, completes with PUT ?digest=, and pulls it back. */
export async function finishUpload(url: string, name: string, blob: Blob, offset: number): Promise<void> {
  if (offset < blob.size) {
    const patch = await fetch(url, {
      method: 'PATCH',
      headers: { 'content-type': 'application/octet-stream', 'content-range': `${offset}-${blob.size - 1}` },
      body: blob.bytes.subarray(offset),
    });
    assert.equal(patch.status, 202, `follow-up PATCH: ${await patch.text()}`);
    assert.equal(patch.headers.get('range'), uploadRange(blob.size));
    url = absolute(patch.headers.get('location')!);
  }
  const put = await fetch(`${url}?digest=${blob.digest}`, { method: 'PUT' });
  assert.equal(put.status, 201, `follow-up PUT: ${await put.text()}`);
  assert.equal(put.headers.get('docker-content-digest'), blob.digest);
  const get = await fetch(`${wharf.base}/v2/${name}/blobs/${blob.digest}`);
  assert.equal(get.status, 200);
  const bytes = Buffer.from(await get.arrayBuffer());
  assert.equal(sha256(bytes), blob.digest, 'the finished blob has the right content');
}

/** Bytes the blob store holds for a session's object (embedded mode), or undefined. */
export async function storedBytes(storageKey: string): Promise<number | undefined> {
  if (!wharf.dataDir) return undefined;
  return (await stat(join(wharf.dataDir, 'blobs', storageKey)).catch(() => undefined))?.size;
}

/**
 * Waits until the server has written at least `bytes` bytes of the request in flight to the
 * newest session of `name` (embedded mode); in cluster mode the object is in S3, so it waits a while.
 */
export async function untilServerHas(name: string, bytes: number): Promise<void> {
  if (!wharf.dataDir) {
    await new Promise((r) => setTimeout(r, 500));
    return;
  }
  await eventually(async () => {
    const rows = await uploadRowsFor(name);
    assert.ok(rows.length > 0, 'no session yet');
    const sizes = await Promise.all(rows.map((r) => storedBytes(r.storage_key)));
    assert.ok(
      sizes.some((s) => (s ?? 0) >= bytes),
      `server has not stored ${bytes} bytes yet (${sizes.join(', ')})`,
    );
  });
}

/** Waits until no request holds the session's row lock, i.e. the server is done with the request. */
export async function untilUnlocked(id: string): Promise<void> {
  await eventually(
    () =>
      wharf.database.db.transaction().execute(async (trx) => {
        await sql`select id from uploads where id = ${id} for update nowait`.execute(trx);
      }),
    15_000,
  );
}

// ---------------------------------------------------------------------------------------------
// Manifests
// ---------------------------------------------------------------------------------------------

/** A repository holding a config and a layer, ready for a manifest that names them. */
export async function repoWithBlobs(prefix: string): Promise<{ name: string; config: Blob; layer: Blob; manifest: string }> {
  const name = repo(prefix);
  const config = blobOf(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, n: name }));
  const layer = randomBlob(700);
  await pushBlob(wharf.base, name, config);
  await pushBlob(wharf.base, name, layer);
  return { name, config, layer, manifest: imageManifest(config, [layer]) };
}

export async function assertNoManifest(name: string, reference: string): Promise<void> {
  const res = await fetch(`${wharf.base}/v2/${name}/manifests/${reference}`);
  assert.equal(res.status, 404, `manifest ${name}:${reference} must not exist`);
  await res.arrayBuffer();
}

// =============================================================================================
