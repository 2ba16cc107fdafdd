import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A private directory and environment for skopeo: its own HOME, temp, runtime and config
 * directories, an empty registries.conf and its own auth file, so a test run never reads or
 * writes the machine user's containers configuration.
 */
export async function skopeoSandbox(prefix: string): Promise<{ tmp: string; env: NodeJS.ProcessEnv }> {
  const tmp = await mkdtemp(join(tmpdir(), prefix));
  for (const d of ['home', 'tmp', 'runtime', 'config', 'registries.d']) await mkdir(join(tmp, d), { recursive: true, mode: 0o700 });
  await writeFile(join(tmp, 'registries.conf'), '');
  const env = {
    PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
    HOME: join(tmp, 'home'),
    TMPDIR: join(tmp, 'tmp'),
    XDG_RUNTIME_DIR: join(tmp, 'runtime'),
    XDG_CONFIG_HOME: join(tmp, 'config'),
    REGISTRY_AUTH_FILE: join(tmp, 'auth.json'),
    CONTAINERS_REGISTRIES_CONF: join(tmp, 'registries.conf'),
  };
  return { tmp, env };
}
