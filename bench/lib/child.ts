import { type ChildProcess, spawn } from 'node:child_process';
import { createServer as createNetServer } from 'node:net';
import { createInterface } from 'node:readline';

/**
 * A server child: prints one JSON line when listening, answers commands on stdin (each with one JSON line,
 * in order; "stats" answers its group-commit count), exits when stdin ends. A line with an `event` field is
 * not an answer: it goes to the `onEvent` listener (bench/federation's children report location changes).
 */
export interface Child<Info> {
  proc: ChildProcess;
  pid: number;
  info: Info;
  commits(): Promise<number>;
  /** Send one command line and wait for its JSON answer. */
  ask<T>(command: string): Promise<T>;
  /** Called with every event line, and the parent's clock (performance.timeOrigin + now) when it was read. */
  onEvent: (event: Record<string, unknown>, receivedAt: number) => void;
  stop(): Promise<void>;
}

/** Start `node [nodeArgs] script [args]` as a benchmark server child and wait for its first JSON line. */
export async function startChild<Info>(
  script: string,
  opts: { nodeArgs?: string[]; args?: string[]; env?: NodeJS.ProcessEnv } = {},
): Promise<Child<Info>> {
  const proc = spawn(process.execPath, [...(opts.nodeArgs ?? []), script, ...(opts.args ?? [])], {
    stdio: ['pipe', 'pipe', 'inherit'],
    env: { ...process.env, ...opts.env },
  });
  const waiters: { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }[] = [];
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const next = () =>
    new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => {
        const i = waiters.findIndex((w) => w.timer === timer);
        if (i >= 0) waiters.splice(i, 1);
        reject(new Error(`${script}: no answer in 30 s`));
      }, 30_000);
      waiters.push({ resolve, reject, timer });
    });
  const child: Child<Info> = {
    proc,
    pid: proc.pid!,
    info: undefined as Info,
    onEvent: () => {},
    async commits() {
      return (await child.ask<{ commits: number }>('stats')).commits;
    },
    ask<T>(command: string) {
      const answer = next();
      proc.stdin!.write(`${command}\n`);
      return answer as Promise<T>;
    },
    async stop() {
      proc.stdin!.end();
      const timer = setTimeout(() => proc.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    },
  };
  createInterface({ input: proc.stdout! }).on('line', (line) => {
    const receivedAt = performance.timeOrigin + performance.now();
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      console.warn(`${script}: not a JSON line: ${line}`);
      return;
    }
    if (value && typeof value === 'object' && 'event' in value) {
      child.onEvent(value as Record<string, unknown>, receivedAt);
      return;
    }
    const w = waiters.shift();
    if (!w) return;
    clearTimeout(w.timer);
    w.resolve(value);
  });
  proc.once('exit', (code) => {
    for (const w of waiters.splice(0)) {
      clearTimeout(w.timer);
      w.reject(new Error(`${script} exited (${code}) before answering`));
    }
  });
  try {
    child.info = (await next()) as Info;
  } catch (err) {
    proc.kill('SIGKILL');
    throw err;
  }
  return child;
}

/** A free TCP port on 127.0.0.1 (listen on port 0, read it, close): for servers that must know each other's. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createNetServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Numbers to 3 decimals, short arrays on one line: the file is already as Biome would format it. */
export function toJson(value: unknown): string {
  const round = (_k: string, v: unknown) =>
    typeof v === 'number' && !Number.isInteger(v) ? Math.round(v * 1000) / 1000 : v;
  const text = JSON.stringify(value, round, 2).replace(
    /\[\s+([^[\]{}]*?)\s+\]/g,
    (_m, inner: string) => `[${inner.split(/,\s+/).join(', ')}]`,
  );
  return `${text}\n`;
}
