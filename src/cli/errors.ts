import { PmbError } from '../protocol/errors.js';

/**
 * A failure the CLI itself detects (no identity yet, bad flag value ...). `code` shows up in --json
 * output like a PmbError's; exitCode 2 marks a usage error.
 */
export class CliError extends Error {
  override readonly name = 'CliError';
  constructor(
    readonly code: string,
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

export function usageError(message: string): CliError {
  return new CliError('usage', message, 2);
}

/** Extra advice appended to server errors whose bare text leaves the user wondering what to do. */
const HINTS: Partial<Record<PmbError['code'], string>> = {
  invite_required: 'ask the server admin for one (pmb invite) and pass --invite CODE',
  registration_closed: 'the admin has closed registration on this server',
  too_many_connections: 'wait a moment and try again',
  rate_limited: 'wait a moment and try again',
};

export interface ErrorReport {
  code: string;
  message: string;
  exitCode: number;
  /** Shown only with PMB_DEBUG set: for bugs, not for expected failures. */
  stack?: string | undefined;
}

export function describeError(err: unknown): ErrorReport {
  if (err instanceof CliError) return { code: err.code, message: err.message, exitCode: err.exitCode };
  if (err instanceof PmbError) {
    const hint = HINTS[err.code];
    const message =
      hint && !err.message.includes(hint) ? `${err.message.replace(/\.$/, '')}: ${hint}` : err.message;
    return { code: err.code, message, exitCode: 1 };
  }
  const e = err instanceof Error ? err : new Error(String(err));
  return { code: 'internal', message: `unexpected error: ${e.message}`, exitCode: 1, stack: e.stack };
}
