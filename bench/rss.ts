import { readdirSync, readFileSync } from 'node:fs';

/** Every descendant of pid (children, grandchildren, ...) from /proc/<pid>/task/<tid>/children. */
export function descendants(pid: number): number[] {
  const out: number[] = [];
  const walk = (p: number) => {
    let tasks: string[];
    try {
      tasks = readdirSync(`/proc/${p}/task`);
    } catch {
      return; // gone
    }
    for (const tid of tasks) {
      let children = '';
      try {
        children = readFileSync(`/proc/${p}/task/${tid}/children`, 'utf8');
      } catch {
        continue;
      }
      for (const c of children.split(' ')) {
        const child = Number(c);
        if (c.trim() !== '' && Number.isInteger(child) && !out.includes(child)) {
          out.push(child);
          walk(child);
        }
      }
    }
  };
  walk(pid);
  return out;
}

/** The process's start time in clock ticks since boot (field 22 of /proc/<pid>/stat), or undefined when it is gone. */
export function startTimeOf(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** CPU seconds (user + system, every thread) the process has used so far; 0 when it is gone. */
export function cpuSecondsOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return 0;
  }
}
const CLOCK_TICKS = 100; // sysconf(_SC_CLK_TCK) on Linux

/** VmRSS and VmHWM (peak RSS as the kernel saw it), in KiB; zeros when the process is gone. */
export function memoryOf(pid: number): { rss: number; hwm: number } {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0);
    return { rss: field('VmRSS'), hwm: field('VmHWM') };
  } catch {
    return { rss: 0, hwm: 0 };
  }
}

/** Proportional set size in KiB: shared pages (PostgreSQL's shared buffers) split between the processes mapping them. */
export function pssOf(pid: number): number {
  try {
    return Number(/^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

export interface Target {
  /** Label of the series, e.g. "Distribution". */
  label: string;
  pid: number;
  /** Also sample the descendants of pid (summed), as "<label> children". */
  children?: string;
}

export type Peaks = Record<string, number>;

/**
 * Samples VmRSS of each target every `intervalMs` and keeps the peak per phase and series (KiB).
 * For targets with children, also the sum of the descendants' VmRSS and, separately, their summed PSS
 * (VmRSS counts shared memory once per process, so the sum overstates PostgreSQL's real footprint).
 */
export class RssSampler {
  phase = 'idle';
  readonly peaks = new Map<string, Peaks>();
  private timer: NodeJS.Timeout | undefined;
  private count = 0;

  constructor(
    private readonly targets: Target[],
    private readonly intervalMs = 100,
  ) {}

  start(): void {
    this.sample();
    this.timer = setInterval(() => this.sample(), this.intervalMs);
  }

  stop(): void {
    clearInterval(this.timer);
    this.sample(true);
  }

  /** Switches to a new phase; its peaks start from the current sample. */
  enter(phase: string): void {
    this.phase = phase;
    this.sample(true);
  }

  peak(series: string, phases?: string[]): number {
    let max = 0;
    for (const [phase, peaks] of this.peaks) if (!phases || phases.includes(phase)) max = Math.max(max, peaks[series] ?? 0);
    return max;
  }

  /**
   * One sample. The descendants (PostgreSQL's backends) only every tenth time, or when `all`: reading
   * their smaps_rollup every 100 ms took the load generator's process half a core in a profile of
   * the blob GET case, CPU taken from the registries it measures.
   */
  sample(all = false): void {
    const descendantsToo = all || this.count++ % 10 === 0;
    let peaks = this.peaks.get(this.phase);
    if (!peaks) {
      peaks = {};
      this.peaks.set(this.phase, peaks);
    }
    const note = (series: string, kib: number) => {
      peaks![series] = Math.max(peaks![series] ?? 0, kib);
    };
    for (const t of this.targets) {
      note(t.label, memoryOf(t.pid).rss);
      if (t.children && descendantsToo) {
        let rss = 0;
        let pss = 0;
        for (const c of descendants(t.pid)) {
          rss += memoryOf(c).rss;
          pss += pssOf(c);
        }
        note(`${t.children} (sum VmRSS)`, rss);
        note(`${t.children} (sum PSS)`, pss);
      }
    }
  }
}
