import { mkdir, open, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigError } from '../../libs/config/index.js';

/** Held while a process owns the data directory: its embedded PostgreSQL, its blobs. */
export interface DataDirLock {
  release(): Promise<void>;
}

const LOCK_FILE = 'wharf.pid';

/** Whether `pid` is a live process that could be a Wharf (a stale file's pid may have been reused by anything). */
async function holder(pid: number): Promise<boolean> {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    const argv = await readFile(`/proc/${pid}/cmdline`, 'utf8');
    return /node|wharf/.test(argv);
  } catch {
    return true; // no /proc: trust the pid
  }
}

/**
 * Takes `<dir>/wharf.pid`, or refuses with the pid of the process that holds it. A second start on
 * the same directory used to stop the running registry's PostgreSQL; now it stops before touching it.
 */
export async function lockDataDir(dir: string): Promise<DataDirLock> {
  await mkdir(dir, { recursive: true });
  const path = join(dir, LOCK_FILE);
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const file = await open(path, 'wx');
      await file.writeFile(`${process.pid}\n`);
      await file.close();
      return {
        async release() {
          const current = await readFile(path, 'utf8').catch(() => '');
          if (Number(current.trim()) === process.pid) await unlink(path).catch(() => {});
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const pid = Number((await readFile(path, 'utf8').catch(() => '')).trim());
    if (Number.isInteger(pid) && pid > 0 && (await holder(pid))) {
      throw new ConfigError(`${dir} is in use: Wharf is already running (pid ${pid}); stop it first, or give this one another data.dir (WHARF_DATA_DIR)`);
    }
    // Left by a process that is gone: take it over. Of two racing starts, one creates the file.
    await unlink(path).catch(() => {});
  }
  throw new ConfigError(`could not take ${path}: another Wharf is starting on ${dir}`);
}
