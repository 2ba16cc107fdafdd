/**
 * One data directory, one Wharf: a second `wharf all` (what `npm start` runs), `wharf reindex`,
 * or any command that would open the embedded PostgreSQL under the same WHARF_DATA_DIR exits 2
 * with one line naming the running process, and the first keeps serving. A lock left by a killed
 * process does not block the next start.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort, runWharfCommand, WHARF_MAIN } from './helpers/processes.js';
import { blobOf, pushBlob } from './helpers/oci.js';

let dataDir: string;
let first: ChildProcess;
let firstUrl: string;
let firstStderr = '';

function env(port: number): Record<string, string> {
  return { WHARF_DATA_DIR: dataDir, WHARF_HTTP_ADDR: `127.0.0.1:${port}`, WHARF_LOG_LEVEL: 'warn' };
}

async function untilServing(url: string, child: ChildProcess, stderr: () => string): Promise<void> {
  for (;;) {
    if (child.exitCode !== null) throw new Error(`wharf all exited: ${stderr()}`);
    try {
      if ((await fetch(`${url}/v2/`)).status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

before(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'wharf-lock-'));
  await chmod(dataDir, 0o755);
  const port = await freePort();
  firstUrl = `http://127.0.0.1:${port}`;
  const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env(port) };
  for (const name of Object.keys(childEnv)) if (name.startsWith('WHARF_TEST_')) delete childEnv[name];
  first = spawn(process.execPath, [WHARF_MAIN, 'all'], { env: childEnv, stdio: ['ignore', 'ignore', 'pipe'] });
  first.stderr!.on('data', (d: Buffer) => (firstStderr += d.toString()));
  await untilServing(firstUrl, first, () => firstStderr);
});

after(async () => {
  if (first && first.exitCode === null) {
    const exited = new Promise((r) => first.once('exit', r));
    first.kill('SIGTERM');
    await exited;
  }
  await rm(dataDir, { recursive: true, force: true });
});

function assertRefused(result: { code: number | null; stderr: string }, what: string): void {
  assert.equal(result.code, 2, `${what}: exit code (stderr: ${result.stderr})`);
  const lines = result.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `${what}: one line, got: ${result.stderr}`);
  assert.match(lines[0]!, new RegExp(`^wharf: .*already running \\(pid ${first.pid}\\)`), what);
}

describe('the data directory lock', () => {
  it('a second wharf all on the same data dir exits 2 naming the first, which keeps serving', async () => {
    const second = await runWharfCommand(['all'], env(await freePort()));
    assertRefused(second, 'second wharf all');
    assert.equal((await pushBlob(firstUrl, 'lock/app', blobOf('still serving'))).status, 201);
    assert.equal((await fetch(`${firstUrl}/readyz`)).status, 200);
  });

  it('wharf reindex on the data dir of a running Wharf exits 2 the same way; the first keeps serving', async () => {
    assertRefused(await runWharfCommand(['reindex'], env(await freePort())), 'reindex');
    assert.equal((await fetch(`${firstUrl}/readyz`)).status, 200);
    assert.equal((await fetch(`${firstUrl}/v2/lock/app/blobs/${blobOf('still serving').digest}`)).status, 200);
  });

  it('the lock file names the running process, and a stale one (a killed Wharf) is taken over', async () => {
    assert.equal(Number((await readFile(join(dataDir, 'wharf.pid'), 'utf8')).trim()), first.pid);
    const other = await mkdtemp(join(tmpdir(), 'wharf-lock-stale-'));
    await chmod(other, 0o755);
    try {
      // A pid no process has: what a SIGKILLed Wharf leaves behind (after its pid was freed).
      await writeFile(join(other, 'wharf.pid'), '2147483646\n');
      const result = await runWharfCommand(['reindex'], { WHARF_DATA_DIR: other, WHARF_LOG_LEVEL: 'warn' });
      assert.equal(result.code, 0, result.stderr);
      await assert.rejects(readFile(join(other, 'wharf.pid')), 'released after the command');
    } finally {
      await rm(other, { recursive: true, force: true });
    }
  });
});
