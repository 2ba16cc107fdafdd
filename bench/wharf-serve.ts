import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WHARF_MAIN } from './wharf-main.js';

/** `wharf serve` on an existing database (in-process bus, no workers), on 127.0.0.1:`port`; resolves once /v2/ answers. */
export async function startWharfServe(databaseUrl: string, port: number): Promise<{ base: string; stop(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-bench-serve-'));
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('WHARF_')));
  const child: ChildProcess = spawn(process.execPath, [WHARF_MAIN, 'serve'], {
    cwd: join(import.meta.dirname, '..'),
    env: { ...inherited, WHARF_HTTP_ADDR: `127.0.0.1:${port}`, WHARF_DATA_DIR: dir, WHARF_DATABASE_URL: databaseUrl, WHARF_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const base = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode === null) {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
    await rm(dir, { recursive: true, force: true });
  };
  for (let i = 0; i < 300; i++) {
    if (child.exitCode !== null) throw new Error(`wharf serve exited with ${child.exitCode}`);
    if (
      await fetch(`${base}/v2/`).then(
        (r) => r.status === 200,
        () => false,
      )
    )
      return { base, stop };
    await new Promise((r) => setTimeout(r, 100));
  }
  await stop();
  throw new Error('wharf serve did not start');
}
