import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface, type Interface } from 'node:readline';

/** A server child: prints one JSON line when listening, answers "stats" on stdin, exits when stdin ends. */
export interface Child<Info> {
  proc: ChildProcess;
  pid: number;
  info: Info;
  commits(): Promise<number>;
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
  const lines: Interface = createInterface({ input: proc.stdout! });
  const next = () =>
    new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${script}: no answer in 30 s`)), 30_000);
      lines.once('line', (l) => {
        clearTimeout(timer);
        resolve(l);
      });
    });
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const info = JSON.parse(await next()) as Info;
  return {
    proc,
    pid: proc.pid!,
    info,
    async commits() {
      const answer = next();
      proc.stdin!.write('stats\n');
      return (JSON.parse(await answer) as { commits: number }).commits;
    },
    async stop() {
      proc.stdin!.end();
      const timer = setTimeout(() => proc.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    },
  };
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
