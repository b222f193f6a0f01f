// Helpers for the tests of the single-file executables (dist/pmb-linux-*, made by `npm run build:binary`).
// Each test copies a binary into an empty directory and runs it there with nothing but PATH and HOME, so a
// binary that still leans on node_modules, package.json or a .env nearby fails instead of passing.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, copyFile, mkdtemp, rm } from 'node:fs/promises';
import { arch, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** The checkout (tests run from dist/test/binary). */
export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const PACKAGE_VERSION = (
  JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }
).version;

export type Target = 'linux-x64' | 'linux-arm64';

/** qemu-user and the C library of each target, for running it on another architecture. */
const EMULATORS: Record<Target, { nodeArch: string; qemu: string; sysroot: string }> = {
  'linux-x64': { nodeArch: 'x64', qemu: 'qemu-x86_64', sysroot: '/usr/x86_64-linux-gnu' },
  'linux-arm64': { nodeArch: 'arm64', qemu: 'qemu-aarch64', sysroot: '/usr/aarch64-linux-gnu' },
};

export const APT_HINT =
  'apt-get install qemu-user libc6-arm64-cross libstdc++6-arm64-cross (as .ci/run does)';

/**
 * A command line prefix that runs a binary of `target` here: nothing when native, else qemu-user. `cpu`
 * (a qemu CPU model) emulates that processor even on the same architecture, so instructions it lacks fail.
 */
export function launcher(target: Target, cpu?: string): string[] {
  const e = EMULATORS[target];
  const foreign = e.nodeArch !== arch();
  if (!foreign && !cpu) return [];
  if (spawnSync('sh', ['-c', `command -v ${e.qemu}`]).status !== 0) {
    throw new Error(`${e.qemu} is missing, so the ${target} binary cannot be tested: ${APT_HINT}`);
  }
  if (foreign && !existsSync(e.sysroot)) {
    throw new Error(`${e.sysroot} (the ${target} C library) is missing: ${APT_HINT}`);
  }
  return [e.qemu, ...(cpu ? ['-cpu', cpu] : []), ...(foreign ? ['-L', e.sysroot] : [])];
}

export interface Sandbox {
  /** The empty directory: cwd and HOME of every run, holding only the binary and what pmb writes. */
  dir: string;
  run(args: string[], opts?: { timeoutMs?: number }): Promise<Result>;
  /** Like run, but throws with pmb's output unless it exits 0. */
  ok(args: string[], opts?: { timeoutMs?: number }): Promise<Result>;
  spawn(args: string[]): ChildProcess;
  [Symbol.asyncDispose](): Promise<void>;
}

export interface Result {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Copies dist/pmb-<target> into a fresh empty directory. A missing binary fails: CI builds it first. */
export async function sandbox(target: Target, cpu?: string): Promise<Sandbox> {
  const built = join(ROOT, 'dist', `pmb-${target}`);
  if (!existsSync(built)) throw new Error(`${built} is missing: run \`npm run build:binary\` first`);
  const prefix = launcher(target, cpu);
  const dir = await mkdtemp(join(tmpdir(), `pmb-bin-${target}-`));
  const bin = join(dir, 'pmb');
  await copyFile(built, bin);
  await chmod(bin, 0o755);
  // env -i PATH HOME: no NODE_*, no PMB_*, no XDG_* of whoever runs the test.
  const env = { PATH: '/usr/local/bin:/usr/bin:/bin', HOME: dir };
  const command = [...prefix, bin];
  const start = (args: string[]) =>
    spawn(command[0]!, [...command.slice(1), ...args], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const run = async (args: string[], opts: { timeoutMs?: number } = {}): Promise<Result> => {
    const began = performance.now();
    const child = start(args);
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
    });
    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    const [code, signal] = (await once(child, 'close')) as [number | null, NodeJS.Signals | null];
    clearTimeout(timer);
    return { code, signal, stdout, stderr, ms: performance.now() - began };
  };
  return {
    dir,
    run,
    async ok(args, opts) {
      const r = await run(args, opts);
      if (r.code !== 0) {
        throw new Error(`pmb ${args.join(' ')} exited ${r.code ?? r.signal}\n${r.stderr}${r.stdout}`);
      }
      return r;
    },
    spawn: start,
    async [Symbol.asyncDispose]() {
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface Serving {
  child: ChildProcess;
  info: { url: string; domain: string; fingerprint: string; dataDir: string; registration: string };
  /** Milliseconds from spawn to the JSON line. */
  readyMs: number;
  stderr(): string;
  /** SIGTERM, then the exit code (null and the signal if it died of one). */
  stop(timeoutMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `pmb serve ... --json` and waits for its JSON line. */
export async function serve(box: Sandbox, args: string[], timeoutMs = 60_000): Promise<Serving> {
  const began = performance.now();
  const child = box.spawn(['serve', '--json', ...args]);
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    err += d;
  });
  const lines = createInterface({ input: child.stdout! });
  let timer: NodeJS.Timeout | undefined;
  try {
    const [line] = (await Promise.race([
      once(lines, 'line'),
      once(child, 'exit').then(([code]) => {
        throw new Error(`pmb serve exited ${code} before it was ready\n${err}`);
      }),
      new Promise((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`pmb serve not ready in ${timeoutMs} ms\n${err}`)),
          timeoutMs,
        );
      }),
    ])) as [string];
    const readyMs = performance.now() - began;
    return {
      child,
      info: JSON.parse(line) as Serving['info'],
      readyMs,
      stderr: () => err,
      async stop(ms = 30_000) {
        if (child.exitCode !== null || child.signalCode !== null) {
          return { code: child.exitCode, signal: child.signalCode };
        }
        const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), ms);
        const [code, signal] = await exited;
        clearTimeout(t);
        return { code, signal };
      },
    };
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  } finally {
    clearTimeout(timer);
  }
}
