import {
  closeSync,
  fsyncSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { availableParallelism, cpus, release } from 'node:os';
import { join } from 'node:path';

/** Figures of the bench: percentiles, medians, and readings of other processes from /proc. */

export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] as number;
}

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const mid = s.length >> 1;
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

export interface Latency {
  p50: number;
  p99: number;
  max: number;
}

export function latency(ms: Float64Array | number[]): Latency {
  const s = Float64Array.from(ms).sort();
  return { p50: percentile(s, 50), p99: percentile(s, 99), max: s.length ? (s[s.length - 1] as number) : 0 };
}

/** What every bench reads around one timed run of a server. */
export interface RunSample {
  msgsPerS: number;
  delivered: number;
  latency: Latency;
  serverCpuS: number;
  /** The load generator's own CPU over the run. */
  loadCpuS: number;
  serverPeakRssMb: number;
  /** Median 4 KiB write+fsync just before the run: the disk moves too on a shared machine. */
  fsyncMs: number;
}

/** Medians over the repeats of a scenario (and the range of msgs/s), with the runs themselves. */
export function summarizeRuns<S extends RunSample>(samples: S[]) {
  const m = (f: (s: S) => number) => median(samples.map(f));
  const rates = samples.map((s) => s.msgsPerS);
  return {
    msgsPerS: m((s) => s.msgsPerS),
    msgsPerSRange: [Math.min(...rates), Math.max(...rates)],
    p50Ms: m((s) => s.latency.p50),
    p99Ms: m((s) => s.latency.p99),
    maxMs: m((s) => s.latency.max),
    serverCpuS: m((s) => s.serverCpuS),
    serverCpuUsPerMsg: m((s) => (s.serverCpuS / s.delivered) * 1e6),
    loadCpuS: m((s) => s.loadCpuS),
    loadCpuUsPerMsg: m((s) => (s.loadCpuS / s.delivered) * 1e6),
    serverPeakRssMb: m((s) => s.serverPeakRssMb),
    fsyncMs: m((s) => s.fsyncMs),
    runs: samples,
  };
}

export interface ProcReading {
  /** Resident set now, MB. */
  rssMb: number;
  /** Peak resident set since start or since resetPeak(), MB. */
  hwmMb: number;
  /** User + system CPU seconds since the process started. */
  cpuS: number;
}

const TICKS_PER_S = 100; // USER_HZ: 100 on every Linux this runs on.

export function readProc(pid: number): ProcReading {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) =>
    Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN);
  // /proc/<pid>/stat: fields after the parenthesised command; utime and stime are fields 14 and 15.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return { rssMb: kb('VmRSS') / 1024, hwmMb: kb('VmHWM') / 1024, cpuS: ticks / TICKS_PER_S };
}

/** Reset VmHWM to the current RSS (Linux clear_refs 5) so each run reports its own peak. */
export function resetPeak(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/** Median time of a 4 KiB append + fsync in dir: the floor under one durable group commit. */
export function fsyncMs(dir: string, n = 50): number {
  const file = join(dir, 'fsync-probe');
  const fd = openSync(file, 'w');
  const block = Buffer.alloc(4096, 1);
  const times: number[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      writeSync(fd, block);
      fsyncSync(fd);
      times.push(performance.now() - t0);
    }
  } finally {
    closeSync(fd);
    rmSync(file, { force: true });
  }
  return median(times);
}

export function machine(): { nproc: number; cpu: string; node: string; kernel: string } {
  return {
    nproc: availableParallelism(),
    cpu: cpus()[0]?.model ?? 'unknown',
    node: process.version,
    kernel: release(),
  };
}

/** The pid and all its descendants (ejabberd's beam has an erl_child_setup helper). */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(entry));
      children.set(ppid, list);
    } catch {
      // Gone since readdir.
    }
  }
  const out: number[] = [];
  const walk = (pid: number) => {
    out.push(pid);
    for (const c of children.get(pid) ?? []) walk(c);
  };
  walk(root);
  return out;
}

/** readProc summed over the pid and its descendants (a process that exits in between counts for nothing). */
export function treeReading(root: number): ProcReading {
  const sum: ProcReading = { rssMb: 0, hwmMb: 0, cpuS: 0 };
  for (const pid of processTree(root)) {
    try {
      const r = readProc(pid);
      sum.rssMb += r.rssMb;
      sum.hwmMb += r.hwmMb;
      sum.cpuS += r.cpuS;
    } catch {
      // Exited in between.
    }
  }
  return sum;
}
