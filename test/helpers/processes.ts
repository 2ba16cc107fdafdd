import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { configToEnv, type Config } from '../../libs/config/index.js';

/** The compiled entry users run (npm start, the image); test/run.ts builds dist/ before any suite. */
export const WHARF_MAIN = 'dist/services/cli/main.js';

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export interface WharfProcess {
  url: string;
  child: ChildProcess;
  /** Everything the process wrote to stderr, for failure messages. */
  stderr(): string;
  exited: Promise<number | null>;
}

/** Runs `wharf <role>` as a separate process (so a test can SIGKILL it) and waits until it answers. */
export async function spawnWharf(role: 'serve' | 'worker', config: Config): Promise<WharfProcess> {
  const port = await freePort();
  const env: NodeJS.ProcessEnv = { ...process.env, ...configToEnv(config), WHARF_HTTP_ADDR: `127.0.0.1:${port}`, WHARF_LOG_LEVEL: 'warn' };
  for (const name of Object.keys(env)) if (name.startsWith('WHARF_TEST_')) delete env[name];
  const child = spawn(process.execPath, [WHARF_MAIN, role], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const url = `http://127.0.0.1:${port}`;
  if (role === 'serve') {
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`wharf ${role} exited: ${stderr}`);
      try {
        if ((await fetch(`${url}/v2/`)).status === 200) break;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`wharf ${role} did not start: ${stderr}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return { url, child, stderr: () => stderr, exited };
}

/** Runs a short `wharf <args>` command to completion; resolves with its exit code and output. */
export function runWharfCommand(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
  for (const name of Object.keys(childEnv)) if (name.startsWith('WHARF_TEST_')) delete childEnv[name];
  const child = spawn(process.execPath, [WHARF_MAIN, ...args], { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code, stdout, stderr })));
}
