import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { isolatedEnv, PMB_BIN } from '../cli/pmb.js';

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

/** Lines of output a `pmb serve` child keeps (stdout and stderr, newest last). */
const KEPT_LINES = 2000;

export interface PmbServeOptions {
  domain: string;
  /** A fixed port: a restart on the same data dir comes back where its peers expect it. */
  port: number;
  dataDir: string;
  /** HOME of the child (nothing of the developer's profile leaks in). */
  home: string;
  /** domain -> host:port, passed as --resolve flags. */
  resolve?: Record<string, string>;
  registration?: 'open' | 'invite' | 'closed';
  /** Until the child answers /.well-known/pmb (default 20 s); then it is killed and start fails. */
  readyTimeoutMs?: number;
}

export interface PmbServeProcess {
  readonly proc: ChildProcess;
  readonly domain: string;
  readonly port: number;
  /** ws://127.0.0.1:port, for clients. */
  readonly url: string;
  /** As /.well-known/pmb states it (and the --json line agrees). */
  readonly fingerprint: string;
  /** Its stdout and stderr (pino JSON logs), the last KEPT_LINES lines. */
  readonly output: string[];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Send `signal` (default SIGKILL) and wait for the exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** SIGTERM (a clean shutdown); SIGKILL if it has not exited within timeoutMs (default 10 s). */
  stop(timeoutMs?: number): Promise<void>;
}

const live = new Set<ChildProcess>();
let reaperInstalled = false;
/** A test process that ends without close() (a crash, an uncaught error) takes its servers with it. */
function reapAtExit(proc: ChildProcess): void {
  live.add(proc);
  proc.once('exit', () => live.delete(proc));
  if (reaperInstalled) return;
  reaperInstalled = true;
  process.once('exit', () => {
    for (const p of live) p.kill('SIGKILL');
  });
}

/**
 * A real `node bin/pmb serve` (dist must be built) on 127.0.0.1:port, with its logs captured. Resolves once
 * it printed its --json line and answers /.well-known/pmb with its domain. An exit nobody asked for prints
 * its last output to stderr; TEST_LOG=<level> also streams it.
 */
export async function startPmbServe(opts: PmbServeOptions): Promise<PmbServeProcess> {
  const args = [
    PMB_BIN,
    'serve',
    '--json',
    '--data-dir',
    opts.dataDir,
    '--domain',
    opts.domain,
    '--host',
    '127.0.0.1',
    '--port',
    String(opts.port),
    '--registration',
    opts.registration ?? 'open',
  ];
  for (const [d, target] of Object.entries(opts.resolve ?? {})) args.push('--resolve', `${d}=${target}`);
  const proc = spawn(process.execPath, ['--enable-source-maps', ...args], {
    env: isolatedEnv(opts.home, { PMB_LOG_LEVEL: process.env.TEST_LOG ?? 'info' }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  reapAtExit(proc);
  const output: string[] = [];
  const keep = (line: string) => {
    output.push(line);
    if (output.length > KEPT_LINES) output.splice(0, output.length - KEPT_LINES);
    if (process.env.TEST_LOG) process.stderr.write(`[${opts.domain}] ${line}\n`);
  };
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.once('exit', (code, signal) => resolve({ code, signal })),
  );
  // Before it is ready, a failure is start's error; after, an exit nobody asked for is printed.
  let expected = true;
  const tail = () => output.slice(-40).join('\n');
  void exited.then(({ code, signal }) => {
    if (!expected)
      process.stderr.write(
        `pmb serve ${opts.domain} exited unexpectedly (${signal ?? code}); its last output:\n${tail()}\n`,
      );
  });
  createInterface({ input: proc.stderr! }).on('line', keep);
  const stdout = createInterface({ input: proc.stdout! });
  const announced = new Promise<{ url: string; fingerprint: string }>((resolve) => {
    stdout.on('line', (line) => {
      keep(line);
      if (!line.startsWith('{')) return;
      try {
        const info = JSON.parse(line) as { url?: unknown; fingerprint?: unknown };
        if (typeof info.url === 'string' && typeof info.fingerprint === 'string')
          resolve({ url: info.url, fingerprint: info.fingerprint });
      } catch {}
    });
  });

  const kill = async (signal: NodeJS.Signals = 'SIGKILL') => {
    expected = true;
    if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
    await exited;
  };
  const timeoutMs = opts.readyTimeoutMs ?? 20_000;
  let timer: NodeJS.Timeout | undefined;
  try {
    const ready = (async () => {
      const info = await announced;
      const doc = await wellKnown(opts.port);
      if (doc.domain !== opts.domain || doc.fingerprint !== info.fingerprint) {
        throw new Error(
          `127.0.0.1:${opts.port} answers as ${doc.domain} ${doc.fingerprint}, not ${opts.domain} ${info.fingerprint}`,
        );
      }
      return info;
    })();
    const died = exited.then(({ code, signal }): never => {
      throw new Error(`exited (${signal ?? code}) before it was ready`);
    });
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`not ready within ${timeoutMs} ms`)), timeoutMs);
    });
    // The losers of the race settle later (the exit when the test kills it): nobody must see them fail.
    for (const p of [ready, died, late]) p.catch(() => {});
    const info = await Promise.race([ready, died, late]);
    expected = false;
    return {
      proc,
      domain: opts.domain,
      port: opts.port,
      url: info.url,
      fingerprint: info.fingerprint,
      output,
      exited,
      kill,
      async stop(ms = 10_000) {
        expected = true;
        if (proc.exitCode !== null || proc.signalCode !== null) return;
        proc.kill('SIGTERM');
        const t = setTimeout(() => proc.kill('SIGKILL'), ms);
        await exited;
        clearTimeout(t);
      },
    };
  } catch (err) {
    await kill();
    const why = `${(err as Error).message}; last output:\n${tail()}`;
    throw new Error(`pmb serve ${opts.domain} on port ${opts.port}: ${why}`, { cause: err });
  } finally {
    clearTimeout(timer);
  }
}

/** GET http://127.0.0.1:port/.well-known/pmb (5 s at most). */
export async function wellKnown(
  port: number,
): Promise<{ domain: string; fingerprint: string; websocket: string }> {
  const res = await fetch(`http://127.0.0.1:${port}/.well-known/pmb`, { signal: AbortSignal.timeout(5000) });
  if (!res.ok) throw new Error(`/.well-known/pmb answered HTTP ${res.status}`);
  return (await res.json()) as { domain: string; fingerprint: string; websocket: string };
}
