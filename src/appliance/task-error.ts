/**
 * An expected failure of an appliance task (backup, restore, upgrade) with a stable `code` for --json
 * output and a message that says what to do. The CLI reports it like its own CliError.
 */
export class ApplianceError extends Error {
  override readonly name = 'ApplianceError';
  constructor(
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
