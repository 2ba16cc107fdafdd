/**
 * Start-up mistakes an operator makes on a first afternoon. Each ends `wharf all` (what npm start
 * runs) with exit 2 and one line `wharf: <what is wrong and how to fix it>`, before anything
 * started: no embedded PostgreSQL created under data.dir, no migration run.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort, runWharfCommand } from './helpers/processes.js';

let root: string;
let busy: Server;
let busyPort: number;

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'wharf-startup-'));
  await chmod(root, 0o755);
  busy = createServer();
  await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', () => resolve()));
  busyPort = (busy.address() as { port: number }).port;
});
after(async () => {
  await new Promise((r) => busy.close(r));
  await rm(root, { recursive: true, force: true });
});

let n = 0;
async function expectOneLine(env: Record<string, string>, pattern: RegExp, what: string, command = 'all'): Promise<void> {
  const dataDir = env.WHARF_DATA_DIR ?? join(root, `d${++n}`);
  const result = await runWharfCommand([command], { WHARF_HTTP_ADDR: `127.0.0.1:${await freePort()}`, WHARF_LOG_LEVEL: 'warn', ...env, WHARF_DATA_DIR: dataDir });
  assert.equal(result.code, 2, `${what}: exit code ${result.code}; stderr: ${result.stderr}`);
  const lines = result.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `${what}: one line, got:\n${result.stderr}`);
  assert.match(lines[0]!, /^wharf: /, what);
  assert.doesNotMatch(lines[0]!, /^wharf: wharf:|: (\S+): \1:/, `${what}: a doubled prefix`);
  assert.match(lines[0]!, pattern, what);
  assert.equal(existsSync(join(dataDir, 'postgres')), false, `${what}: the embedded PostgreSQL was initialised before the error`);
}

describe('start-up errors: one line, exit 2, nothing started', () => {
  it('a port out of range', async () => {
    await expectOneLine({ WHARF_HTTP_ADDR: '127.0.0.1:99999' }, /http\.addr "127\.0\.0\.1:99999".*0 to 65535/, 'port 99999');
  });

  it('a port in use', async () => {
    await expectOneLine({ WHARF_HTTP_ADDR: `127.0.0.1:${busyPort}` }, /http\.addr 127\.0\.0\.1:\d+: the port is in use/, 'port in use');
  });

  it('an address this machine does not have', async () => {
    await expectOneLine({ WHARF_HTTP_ADDR: '192.0.2.1:21001' }, /http\.addr 192\.0\.2\.1:21001: no interface of this machine has that address/, 'foreign address');
  });

  it('an unknown worker role', async () => {
    await expectOneLine({ WHARF_WORKER_ROLES: 'webhooks,indexer' }, /worker\.roles: unknown role indexer/, 'unknown role');
  });

  it('missing TLS files', async () => {
    await expectOneLine(
      { WHARF_HTTP_TLS_CERTIFICATE: join(root, 'missing.crt'), WHARF_HTTP_TLS_KEY: join(root, 'missing.key') },
      /http\.tls\.certificate: cannot read .*missing\.crt: ENOENT/,
      'missing TLS files',
    );
  });

  it('a placeholder signing key', async () => {
    const key = join(root, 'placeholder.pem');
    const htpasswd = join(root, 'htpasswd');
    await writeFile(key, '-----BEGIN PRIVATE KEY-----\nREPLACE-ME\n-----END PRIVATE KEY-----\n');
    await writeFile(htpasswd, '');
    await expectOneLine(
      { WHARF_AUTH_MODE: 'token', WHARF_AUTH_TOKEN_SIGNINGKEY: key, WHARF_AUTH_HTPASSWD_PATH: htpasswd },
      /auth\.token\.signingkey: the file is not a PEM key/,
      'placeholder key',
    );
  });

  it('a missing signing key file: named once', async () => {
    const htpasswd = join(root, 'htpasswd2');
    await writeFile(htpasswd, '');
    await expectOneLine(
      { WHARF_AUTH_MODE: 'token', WHARF_AUTH_TOKEN_SIGNINGKEY: join(root, 'absent.pem'), WHARF_AUTH_HTPASSWD_PATH: htpasswd },
      /^wharf: auth\.token\.signingkey: cannot read .*absent\.pem/,
      'missing key file',
    );
  });

  it('as root, a data dir under a mode-700 parent', { skip: process.getuid?.() !== 0 ? 'not running as root' : false }, async () => {
    const closed = join(root, 'closed');
    await mkdir(closed, { mode: 0o700 });
    await chmod(closed, 0o700);
    await expectOneLine({ WHARF_DATA_DIR: join(closed, 'data') }, /closed is mode 700.*chmod o\+x/, 'mode-700 parent');
  });

  it("WHARF_SKIP_NATIVE and WHARF_BUILD_QUIET (the build scripts' variables) are not refused as unknown keys", async () => {
    const result = await runWharfCommand(['all'], {
      WHARF_SKIP_NATIVE: '1',
      WHARF_BUILD_QUIET: '1',
      WHARF_HTTP_ADDR: '127.0.0.1:99999',
      WHARF_DATA_DIR: join(root, 'build-vars'),
    });
    assert.equal(result.code, 2);
    assert.match(result.stderr, /http\.addr/, 'the error is the port, not the variables');
    assert.doesNotMatch(result.stderr, /WHARF_SKIP_NATIVE|WHARF_BUILD_QUIET/);
  });
});
