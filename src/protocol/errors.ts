/**
 * The one error shape of PMB. Every failure that reaches a peer is a PmbError with a stable `code`;
 * `fromError` turns anything else into an `internal` error without leaking details.
 */
export const ERROR_CODES = {
  bad_frame: {
    status: 400,
    close: 1007,
    text: 'The frame could not be decoded or does not match its schema',
  },
  unknown_type: { status: 400, close: 1003, text: 'Unknown frame type' },
  frame_too_large: { status: 413, close: 1009, text: 'Frame exceeds the size limit' },
  rate_limited: { status: 429, close: 1008, text: 'Too many frames; slow down' },
  too_many_connections: { status: 429, close: 1013, text: 'Too many connections from this address' },
  unsupported_version: { status: 400, close: 1002, text: 'No common protocol version' },
  hello_required: { status: 400, close: 1002, text: 'Send hello first' },
  login_required: { status: 401, close: 1008, text: 'Log in first' },
  already_logged_in: { status: 409, close: 1008, text: 'This connection is already logged in' },
  login_failed: { status: 401, close: 1008, text: 'Login failed' },
  challenge_expired: { status: 401, close: 1008, text: 'The login challenge expired; start again' },
  too_many_pending_logins: { status: 429, close: 1013, text: 'Too many logins in progress' },
  unknown_account: { status: 404, close: 1008, text: 'No such account' },
  not_found: { status: 404, close: 1008, text: 'Not found' },
  registration_closed: { status: 403, close: 1008, text: 'Registration is closed on this server' },
  invite_required: { status: 403, close: 1008, text: 'Registration needs a valid invite code' },
  nickname_taken: { status: 409, close: 1008, text: 'That nickname is taken' },
  bad_nickname: {
    status: 400,
    close: 1008,
    text: 'Nicknames are 2-32 of a-z, 0-9, ".", "_", "-", starting with a letter or digit',
  },
  wrong_domain: { status: 400, close: 1008, text: 'This server is not the registrar of that domain' },
  wrong_server: { status: 400, close: 1008, text: 'The server is not the one this profile trusts' },
  bad_key: { status: 400, close: 1008, text: 'The public key is not a usable PMB key' },
  bad_signature: { status: 400, close: 1008, text: 'A signature is missing or invalid' },
  bad_record: { status: 400, close: 1008, text: 'The signed record is invalid' },
  stale_record: { status: 409, close: 1008, text: 'The record is older than the one already held' },
  record_fork: { status: 409, close: 1008, text: 'The record conflicts with the chain already held' },
  record_gap: { status: 409, close: 1008, text: 'Records before this one are missing here' },
  expired: { status: 400, close: 1008, text: 'The record has expired' },
  bad_message: {
    status: 400,
    close: 1008,
    text: 'The message is not a valid signed and encrypted PMB message',
  },
  not_for_me: { status: 400, close: 1008, text: 'The message was not addressed to this identity' },
  duplicate: { status: 409, close: 1008, text: 'Already received' },
  too_many_recipients: { status: 400, close: 1008, text: 'Too many recipients' },
  storage_full: { status: 507, close: 1011, text: 'The server cannot store more right now' },
  unavailable: { status: 503, close: 1013, text: 'The server is shutting down or overloaded' },
  timeout: { status: 504, close: 1011, text: 'The request timed out' },
  unreachable: { status: 502, close: 1014, text: 'Another server could not be reached' },
  bad_server: {
    status: 502,
    close: 1014,
    text: 'Another server answered with an invalid or inconsistent discovery document',
  },
  moved: {
    status: 409,
    close: 1008,
    text: 'The account has moved to another server; its location record names it',
  },
  forbidden: { status: 403, close: 1008, text: 'Not allowed' },
  bad_request: { status: 400, close: 1008, text: 'Bad request' },
  internal: { status: 500, close: 1011, text: 'Internal error' },
} as const satisfies Record<string, { status: number; close: number; text: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export class PmbError extends Error {
  override readonly name = 'PmbError';
  readonly code: ErrorCode;
  /** Close the connection after reporting (protocol violations that leave the stream unusable). */
  readonly fatal: boolean;

  constructor(code: ErrorCode, message?: string, options?: { cause?: unknown; fatal?: boolean }) {
    super(
      message ?? ERROR_CODES[code].text,
      options?.cause === undefined ? undefined : { cause: options.cause },
    );
    this.code = code;
    this.fatal = options?.fatal ?? false;
  }

  get status(): number {
    return ERROR_CODES[this.code].status;
  }

  get closeCode(): number {
    return ERROR_CODES[this.code].close;
  }
}

export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(ERROR_CODES, code);
}

/** Normalize anything thrown into a PmbError; internal details never reach the peer. */
export function fromError(cause: unknown): PmbError {
  if (cause instanceof PmbError) return cause;
  return new PmbError('internal', undefined, { cause });
}
