import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface GpgResult {
  code: number | null;
  stdout: Uint8Array;
  stderr: string;
  /** The `[GNUPG:] ...` lines of --status-fd, without the prefix. */
  status: string[];
}

/**
 * A throwaway GnuPG home. Status lines go to stderr (--status-fd 2), so stdout carries only data.
 * gpg must be installed (CI installs Debian's gnupg); a missing gpg fails the test rather than skipping it.
 */
export class GnuPG {
  private constructor(readonly home: string) {}

  static async create(): Promise<GnuPG> {
    await assertGpgInstalled();
    // Short path: gpg-agent's socket path must stay under the Unix socket length limit.
    return new GnuPG(await mkdtemp(join(tmpdir(), 'pmb-gpg-')));
  }

  run(args: string[], stdin?: Uint8Array | string): Promise<GpgResult> {
    const full = [
      '--batch',
      '--no-tty',
      '--homedir',
      this.home,
      '--pinentry-mode',
      'loopback',
      '--status-fd',
      '2',
    ];
    return new Promise((resolve, reject) => {
      const child = spawn('gpg', [...full, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
      const out: Uint8Array[] = [];
      let err = '';
      child.stdout.on('data', (d: Uint8Array) => out.push(d));
      child.stderr.setEncoding('utf8');
      child.stderr.on('data', (d: string) => {
        err += d;
      });
      child.on('error', reject);
      child.on('close', (code) => {
        const stdout = new Uint8Array(Buffer.concat(out));
        const status = err
          .split('\n')
          .filter((l) => l.startsWith('[GNUPG:] '))
          .map((l) => l.slice('[GNUPG:] '.length));
        resolve({ code, stdout, stderr: err, status });
      });
      child.stdin.on('error', () => {}); // gpg may exit before reading all input; 'close' reports it.
      child.stdin.end(stdin ?? new Uint8Array());
    });
  }

  async ok(args: string[], stdin?: Uint8Array | string): Promise<GpgResult> {
    const r = await this.run(args, stdin);
    if (r.code !== 0) throw new Error(`gpg ${args.join(' ')} exited ${r.code}:\n${r.stderr}`);
    return r;
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      const child = spawn('gpgconf', ['--homedir', this.home, '--kill', 'gpg-agent'], { stdio: 'ignore' });
      child.on('error', () => resolve());
      child.on('close', () => resolve());
    });
    await rm(this.home, { recursive: true, force: true });
  }
}

async function assertGpgInstalled(): Promise<void> {
  const version = await new Promise<string>((resolve, reject) => {
    const child = spawn('gpg', ['--version'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let text = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => {
      text += d;
    });
    child.on('error', (e) =>
      reject(
        new Error(
          `GnuPG (gpg) is not installed, so the GnuPG interop tests cannot run: install it with ` +
            `"apt-get update && apt-get install -y gnupg" (CI must install it). Cause: ${e.message}`,
        ),
      ),
    );
    child.on('close', () => resolve(text));
  });
  if (!/^gpg \(GnuPG\) 2\./m.test(version)) throw new Error(`Unexpected gpg version output:\n${version}`);
}
