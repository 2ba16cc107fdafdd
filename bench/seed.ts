import { createHash, randomBytes, randomFillSync } from 'node:crypto';
import { request } from 'node:http';

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar';

export const APP_REPO = 'bench/app';
export const TAGS_REPO = 'bench/tags';
export const TAG_COUNT = 1000;
export const tagName = (i: number) => `t${String(i).padStart(4, '0')}`;

export interface Blob {
  digest: string;
  bytes: Buffer;
}

export const sha256 = (data: Uint8Array | string) => `sha256:${createHash('sha256').update(data).digest('hex')}`;
const blobOf = (bytes: Buffer): Blob => ({ digest: sha256(bytes), bytes });

/** What every read case needs to know about the seeded data; identical for both registries. */
export interface Dataset {
  app: { manifest: string; digest: string; config: Blob; layer: Blob };
  tags: { manifest: string; digest: string; config: Blob; layer: Blob };
  /** The 1 MiB random blob (the layer of bench/app:latest). */
  bigBlob: Blob;
}

function image(config: Blob, layer: Blob): { manifest: string; digest: string } {
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: OCI_CONFIG, digest: config.digest, size: config.bytes.length },
    layers: [{ mediaType: OCI_LAYER, digest: layer.digest, size: layer.bytes.length }],
  });
  return { manifest, digest: sha256(manifest) };
}

/** Builds the data set once, so both registries get the same bytes. */
export function makeDataset(): Dataset {
  const config = (nonce: string) =>
    blobOf(Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, config: { Labels: { nonce } } })));
  const blob1m = blobOf(randomBytes(1024 * 1024));
  const appConfig = config(randomBytes(8).toString('hex'));
  const tagsConfig = config(randomBytes(8).toString('hex'));
  const tagsLayer = blobOf(randomBytes(4096));
  return {
    app: { ...image(appConfig, blob1m), config: appConfig, layer: blob1m },
    tags: { ...image(tagsConfig, tagsLayer), config: tagsConfig, layer: tagsLayer },
    bigBlob: blob1m,
  };
}

/** An HTTP error that carries the exact request and response, for the report. */
export class HttpError extends Error {}

async function expect(res: Response, status: number, what: string, method: string, url: string): Promise<Response> {
  if (res.status === status) return res;
  const headers = [...res.headers].map(([k, v]) => `${k}: ${v}`).join('\n  ');
  throw new HttpError(`${what}: expected ${status}\n> ${method} ${url}\n< ${res.status} ${res.statusText}\n  ${headers}\n\n${await res.text()}`);
}

/**
 * Monolithic upload in one `POST ?digest=` request. A registry that ignores the body and opens a session
 * instead (202; CNCF Distribution 2.8 does) gets the blob in one PUT to the session, as the spec allows.
 */
export async function pushBlob(base: string, repo: string, blob: Blob): Promise<void> {
  const body = blob.bytes as Uint8Array<ArrayBuffer>;
  const url = `${base}/v2/${repo}/blobs/uploads/?digest=${blob.digest}`;
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body });
  if (res.status === 202) {
    await res.arrayBuffer();
    const put = new URL(res.headers.get('location') ?? '', url);
    put.searchParams.set('digest', blob.digest);
    const done = await fetch(put, { method: 'PUT', headers: { 'content-type': 'application/octet-stream' }, body });
    await (await expect(done, 201, `blob upload ${repo} (POST then PUT)`, 'PUT', put.href)).arrayBuffer();
    return;
  }
  await (await expect(res, 201, `monolithic blob upload ${repo}`, 'POST', url)).arrayBuffer();
}

export async function putManifest(base: string, repo: string, reference: string, manifest: string): Promise<void> {
  const url = `${base}/v2/${repo}/manifests/${reference}`;
  const res = await fetch(url, { method: 'PUT', headers: { 'content-type': OCI_MANIFEST }, body: manifest });
  await (await expect(res, 201, `manifest PUT ${repo}:${reference}`, 'PUT', url)).arrayBuffer();
}

/** Runs `task(i)` for i in [0, n) with at most `width` in flight. */
async function parallel(n: number, width: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < n) await task(next++);
    }),
  );
}

/** bench/app:latest (config + the 1 MiB blob as its layer) and bench/tags with t0000..t0999 on one manifest. */
export async function seed(base: string, data: Dataset): Promise<void> {
  for (const b of [data.app.config, data.app.layer]) await pushBlob(base, APP_REPO, b);
  await putManifest(base, APP_REPO, 'latest', data.app.manifest);
  for (const b of [data.tags.config, data.tags.layer]) await pushBlob(base, TAGS_REPO, b);
  await parallel(TAG_COUNT, 8, (i) => putManifest(base, TAGS_REPO, tagName(i), data.tags.manifest));
}

/** One request with a streamed body (node:http, so Content-Length is exact and backpressure is honoured). */
function streamRequest(
  method: string,
  url: string,
  headers: Record<string, string | number>,
  body: AsyncIterable<Buffer> | undefined,
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (!body) return void req.end();
    (async () => {
      for await (const chunk of body) {
        if (!req.write(chunk)) await new Promise((r) => req.once('drain', r));
      }
      req.end();
    })().catch((err) => req.destroy(err));
  });
}

/**
 * Pushes `totalBytes` of random bytes as one blob in PATCHes of `chunkBytes`, generated 1 MiB at a time
 * (never the whole blob in memory), then finishes with PUT ?digest=. Returns the digest. With several
 * bases, the requests go to each in turn.
 */
export async function pushChunked(bases: string | string[], repo: string, totalBytes: number, chunkBytes: number): Promise<string> {
  // Several bases (the nodes of a cluster): each request of the upload goes to the next one.
  const all = typeof bases === 'string' ? [bases] : bases;
  let turn = 0;
  const nextBase = () => all[turn++ % all.length]!;
  const hash = createHash('sha256');
  const piece = 1024 * 1024;
  async function* chunk(length: number): AsyncGenerator<Buffer> {
    for (let done = 0; done < length; done += piece) {
      const b = randomFillSync(Buffer.allocUnsafe(Math.min(piece, length - done)));
      hash.update(b);
      yield b;
    }
  }
  const fail = (what: string, method: string, url: string, res: { status: number; headers: object; text: string }) =>
    new HttpError(`${what}\n> ${method} ${url}\n< ${res.status}\n  ${JSON.stringify(res.headers)}\n\n${res.text}`);

  let url = `${nextBase()}/v2/${repo}/blobs/uploads/`;
  let res = await streamRequest('POST', url, { 'content-length': 0 }, undefined);
  if (res.status !== 202) throw fail('start upload', 'POST', url, res);
  let location = String(res.headers.location);
  for (let offset = 0; offset < totalBytes; offset += chunkBytes) {
    const length = Math.min(chunkBytes, totalBytes - offset);
    url = new URL(location, nextBase()).href;
    res = await streamRequest(
      'PATCH',
      url,
      { 'content-type': 'application/octet-stream', 'content-length': length, 'content-range': `${offset}-${offset + length - 1}` },
      chunk(length),
    );
    if (res.status !== 202) throw fail(`PATCH at offset ${offset}`, 'PATCH', url, res);
    location = String(res.headers.location);
  }
  const digest = `sha256:${hash.digest('hex')}`;
  const finish = new URL(location, nextBase());
  finish.searchParams.set('digest', digest);
  res = await streamRequest('PUT', finish.href, { 'content-length': 0 }, undefined);
  if (res.status !== 201) throw fail('finish upload', 'PUT', finish.href, res);
  return digest;
}

/** GETs a blob and discards its bytes as they arrive; returns the byte count. */
export function drain(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    request(url, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        return reject(new HttpError(`GET ${url}: ${res.statusCode}`));
      }
      let n = 0;
      res.on('data', (c: Buffer) => (n += c.length));
      res.on('end', () => resolve(n));
      res.on('error', reject);
    })
      .on('error', reject)
      .end();
  });
}
