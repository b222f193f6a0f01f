import type { Readable, Writable } from 'node:stream';

/** What a command may touch of the outside world; main builds it from the process, tests may fake it. */
export interface CliContext {
  /** Aborted on SIGINT/SIGTERM: long-running commands stop cleanly. */
  signal: AbortSignal;
  env: Record<string, string | undefined>;
  stdin: Readable & { isTTY?: boolean };
  stdout: Writable & { isTTY?: boolean };
  stderr: Writable;
  /** Set once the command's options are parsed, so errors are reported in the right shape. */
  json: boolean;
  /** Exit code for a command that finished but partly failed (e.g. a chat line not sent). */
  exitCode: number;
}

export function print(ctx: CliContext, line: string): void {
  ctx.stdout.write(`${line}\n`);
}

export function printJson(ctx: CliContext, value: unknown): void {
  ctx.stdout.write(`${JSON.stringify(value)}\n`);
}

/** Progress and notices: stderr, so stdout stays clean for pipes. Silent in --json mode. */
export function note(ctx: CliContext, line: string): void {
  if (!ctx.json) ctx.stderr.write(`${line}\n`);
}
