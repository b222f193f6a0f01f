import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** bin/pmb of this checkout (tests run from dist/test/cli). */
export const PMB_BIN = fileURLToPath(new URL('../../../bin/pmb', import.meta.url));

export interface PmbResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Written to stdin, which is then closed. */
  input?: string;
  env?: Record<string, string | undefined>;
  timeoutMs?: number;
}

/** The environment of every pmb subprocess: nothing of the developer's own profile or PMB_* settings. */
export function isolatedEnv(home: string, extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('PMB_') && !k.startsWith('XDG_') && !k.startsWith('NODE_TEST')) env[k] = v;
  }
  env.HOME = home;
  // An empty config file: a /etc/pmb/pmb.toml on the test machine must not change what the tests start.
  env.PMB_CONFIG = '/dev/null';
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

/** Run `node bin/pmb ...args` to completion. */
export function runPmb(args: string[], home: string, opts: RunOptions = {}): Promise<PmbResult> {
  const child = spawn(process.execPath, [PMB_BIN, ...args], {
    env: isolatedEnv(home, opts.env),
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  child.stdin.end(opts.input ?? '');
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 20_000);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Lines of JSON on stdout. */
export function jsonLines(stdout: string): Record<string, unknown>[] {
  return stdout
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/**
 * A scratch HOME with one profile dir per user: `user.run('alice', ['send', ...])` runs pmb with
 * `--profile <home>/alice` appended.
 */
export async function cliSandbox(): Promise<{
  home: string;
  profile(user: string): string;
  run(user: string, args: string[], opts?: RunOptions): Promise<PmbResult>;
  /** Like run, but fails the test with pmb's stderr unless it exits 0. */
  ok(user: string, args: string[], opts?: RunOptions): Promise<PmbResult>;
  [Symbol.asyncDispose](): Promise<void>;
}> {
  const home = await mkdtemp(join(tmpdir(), 'pmb-cli-'));
  const profile = (user: string) => join(home, 'profiles', user);
  const run = (user: string, args: string[], opts?: RunOptions) =>
    runPmb([...args, '--profile', profile(user)], home, opts);
  return {
    home,
    profile,
    run,
    async ok(user, args, opts) {
      const t0 = Date.now();
      const r = await run(user, args, opts);
      if (process.env.PMB_TEST_TIMING) console.error(`${Date.now() - t0} ms: pmb ${args.join(' ')}`);
      if (r.code !== 0) {
        throw new Error(
          `pmb ${args.join(' ')} (as ${user}) exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`,
        );
      }
      return r;
    },
    [Symbol.asyncDispose]: () => rm(home, { recursive: true, force: true }),
  };
}
