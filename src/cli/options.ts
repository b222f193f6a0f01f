import { resolve } from 'node:path';
import type { Command } from 'commander';
import type { CliContext } from './context.js';
import { usageError } from './errors.js';
import { defaultProfileDir } from './paths.js';
import { Profile } from './profile.js';

export interface ClientOptions {
  profile?: string;
  json?: boolean;
  passphraseFile?: string;
}

/** The options every client command shares. */
export function clientOptions(cmd: Command): Command {
  return cmd
    .option('--profile <dir>', 'profile directory (default: $PMB_PROFILE or ~/.config/pmb)')
    .option(
      '--passphrase-file <file>',
      'file whose first line is the key passphrase (or set $PMB_PASSPHRASE)',
    )
    .option('--json', 'machine-readable output');
}

export function openProfile(ctx: CliContext, opts: ClientOptions): Promise<Profile> {
  return Profile.open(resolve(opts.profile ?? defaultProfileDir(ctx.env)));
}

export function parseIntOption(name: string, min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\d+$/.test(value.trim()) || !Number.isInteger(n) || n < min || n > max) {
      throw usageError(`${name} must be a whole number from ${min} to ${max}, not "${value}"`);
    }
    return n;
  };
}

export function parsePositiveNumber(name: string, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n) || n <= 0 || n > max) {
      throw usageError(`${name} must be a number above 0 and at most ${max}, not "${value}"`);
    }
    return n;
  };
}

/** Resolves when the signal aborts (Ctrl-C / SIGTERM). */
export function aborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
}

export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
