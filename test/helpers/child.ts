import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

export interface ChildServer {
  proc: ChildProcess;
  url: string;
  fingerprint: string;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/** Start test/helpers/server-child in its own process on dataDir. */
export async function startChildServer(dataDir: string): Promise<ChildServer> {
  const proc = spawn(process.execPath, ['--enable-source-maps', join(here, 'server-child.js'), dataDir], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: proc.stdout! });
  const [line] = (await Promise.race([
    once(lines, 'line'),
    once(proc, 'exit').then(([code]) => {
      throw new Error(`server child exited with ${code}`);
    }),
  ])) as [string];
  const info = JSON.parse(line) as { url: string; fingerprint: string };
  return {
    proc,
    ...info,
    async kill(signal = 'SIGKILL') {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = once(proc, 'exit');
      proc.kill(signal);
      await exited;
    },
  };
}
