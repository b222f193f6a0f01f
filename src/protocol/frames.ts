import { z } from 'zod';
import type { ErrorCode } from './errors.js';
import { signedRecord } from './records.js';
import { bytes, deviceId, domain, fingerprint, kind, messageId, timestamp, uint } from './schemas.js';

/**
 * Every frame is a map with a `type`. Requests (client -> server) carry an `id` that the response echoes;
 * a request is answered by exactly one frame: `<type>.ok` with the same id, or `error` with the same id.
 * Pushes (server -> client) carry no id.
 */
export interface MethodDef<Name extends string, Req extends z.ZodType, Res extends z.ZodType> {
  readonly name: Name;
  readonly okType: `${Name}.ok`;
  readonly request: Req;
  readonly response: Res;
  readonly errors: readonly ErrorCode[];
  /** Needs a logged-in connection. */
  readonly auth: boolean;
  readonly summary: string;
}

const requestId = z
  .number()
  .int()
  .min(0)
  .max(2 ** 32 - 1);

export function method<Name extends string, P extends z.ZodRawShape, R extends z.ZodRawShape>(
  name: Name,
  def: { params: P; result: R; errors: ErrorCode[]; auth: boolean; summary: string },
) {
  for (const k of [...Object.keys(def.params), ...Object.keys(def.result)]) {
    if (k === 'type' || k === 'id') throw new Error(`${name}: "${k}" is reserved for the frame itself`);
  }
  return {
    name,
    okType: `${name}.ok` as const,
    request: z.object({ type: z.literal(name), id: requestId, ...def.params }),
    response: z.object({ type: z.literal(`${name}.ok` as const), id: requestId, ...def.result }),
    errors: def.errors,
    auth: def.auth,
    summary: def.summary,
  } satisfies MethodDef<Name, z.ZodType, z.ZodType>;
}

export const serverInfo = z.object({
  domain,
  fingerprint,
  /** The server's OpenPGP public key (binary). */
  publicKey: bytes,
  registration: z.enum(['open', 'invite', 'closed']),
});

export const limitsInfo = z.object({
  maxFrameBytes: uint,
  maxBodyBytes: uint,
  maxRecipients: uint,
  framesPerSecond: uint,
});

/**
 * What a server stores and forwards: everything but `body` is visible to servers; `body` is OpenPGP.
 * Unknown fields are kept and forwarded, so newer clients can add some without breaking older servers.
 */
export const envelope = z.looseObject({
  id: messageId,
  from: fingerprint,
  to: z.array(fingerprint).min(1),
  /** Sender's clock, ms. */
  ts: timestamp,
  /** What the body holds: "msg" (a chat message) for now; more kinds later. */
  kind,
  /** Body format version: 1 = OpenPGP signed+encrypted (SEIPDv1) over CBOR content. */
  bv: z.literal(1),
  body: bytes,
});
export type Envelope = z.infer<typeof envelope>;

export const Hello = method('hello', {
  params: { versions: z.array(uint).min(1).max(16), agent: z.string().max(100).optional() },
  result: {
    version: uint,
    /** Opaque id of this connection; login answers are bound to it. */
    connection: z.string().max(64),
    /** Server clock, ms. */
    time: timestamp,
    server: serverInfo,
    limits: limitsInfo,
  },
  errors: ['unsupported_version', 'bad_request'],
  auth: false,
  summary: 'Open the conversation: agree on a protocol version; learn the server identity and limits.',
});

export const Register = method('register', {
  params: {
    /** Nickname binding record, seq 1 of a new identity chain, signed by the key. */
    binding: signedRecord,
    publicKey: bytes,
    invite: z.string().max(128).optional(),
  },
  result: { binding: signedRecord },
  errors: [
    'registration_closed',
    'invite_required',
    'nickname_taken',
    'bad_nickname',
    'wrong_domain',
    'bad_key',
    'bad_signature',
    'bad_record',
    'expired',
    'stale_record',
    'record_fork',
  ],
  auth: false,
  summary: 'Register nick@domain for a key; the server countersigns the binding.',
});

export const LoginStart = method('login.start', {
  params: {
    fingerprint,
    device: deviceId,
    /**
     * For an identity that has no account here yet (it registered elsewhere and moves here): an invite
     * code, needed when this server's registration is invite-only.
     */
    invite: z.string().max(128).optional(),
  },
  result: {
    /** OpenPGP message, encrypted to the account key, holding 32 random bytes. */
    challenge: bytes,
    expires: timestamp,
  },
  errors: [
    'unknown_account',
    'already_logged_in',
    'too_many_pending_logins',
    'bad_key',
    'registration_closed',
    'invite_required',
  ],
  auth: false,
  summary:
    'Ask for a login challenge encrypted to the account key (any identity this server knows, also one registered elsewhere).',
});

export const LoginFinish = method('login.finish', {
  params: {
    /** SHA-256 of CBOR ["pmb-login-v1", secret, server fingerprint, connection, expires]. */
    answer: bytes,
  },
  result: {
    fingerprint,
    device: deviceId,
    /** Nickname bindings held for the account. */
    bindings: z.array(signedRecord),
    /** Domain of the server the identity's newest location record (or else its binding) names. */
    location: domain,
  },
  errors: ['login_failed', 'challenge_expired', 'invite_required'],
  auth: false,
  summary: 'Prove possession of the key; the connection becomes a device session of the account.',
});

export const Lookup = method('lookup', {
  params: { query: z.string().min(1).max(300) },
  result: {
    fingerprint,
    publicKey: bytes,
    /** The identity's signed records (bindings, location ...), chain order. */
    records: z.array(signedRecord),
    /** Domain of the server currently responsible for the account. */
    server: domain,
    /**
     * Server records (with their keys) of the servers the records name: the registrars of the bindings
     * and the current location, as this server pinned them.
     */
    servers: z.array(z.object({ record: signedRecord, publicKey: bytes })).max(16),
  },
  errors: ['not_found', 'bad_request'],
  auth: false,
  summary: 'Resolve nick@domain or a fingerprint to the key, its records and its current server.',
});

export const Send = method('send', {
  params: { envelope },
  result: {
    /** The envelope id (the request id is `id`). */
    message: messageId,
    /** Server receipt time, ms. The message is durably stored when this arrives. */
    ts: timestamp,
    /** true when this id was already stored earlier (a retry); nothing new was stored. */
    duplicate: z.boolean(),
  },
  errors: [
    'login_required',
    'bad_message',
    'unknown_account',
    'too_many_recipients',
    'storage_full',
    'forbidden',
    'moved',
  ],
  auth: true,
  summary: 'Store and forward an envelope; answered only after it is committed to disk.',
});

export const Publish = method('record.publish', {
  params: {
    /** The next record of the logged-in identity's own chain (location, profile, recovery ...). */
    record: signedRecord,
  },
  result: {
    /** false when the same record was already held (a retry). */
    accepted: z.boolean(),
  },
  errors: [
    'login_required',
    'forbidden',
    'bad_record',
    'bad_signature',
    'stale_record',
    'record_fork',
    'record_gap',
    'expired',
  ],
  auth: true,
  summary:
    'Publish a record of your own identity; the server verifies it, stores it and passes it to every linked server.',
});

export const Ack = method('ack', {
  params: {
    /** Everything in this device's mailbox up to and including seq has been received. */
    seq: uint,
  },
  result: { seq: uint },
  errors: ['login_required'],
  auth: true,
  summary: "Move this device's mailbox cursor forward.",
});

export const Ping = method('ping', {
  params: {},
  result: { time: timestamp },
  errors: [],
  auth: false,
  summary: 'Liveness check; returns the server clock.',
});

export const METHODS = [Hello, Register, LoginStart, LoginFinish, Lookup, Send, Publish, Ack, Ping] as const;
export type Method = (typeof METHODS)[number];
export type MethodName = Method['name'];
export type RequestOf<M extends Method> = z.infer<M['request']>;
export type ResponseOf<M extends Method> = z.infer<M['response']>;
export type ParamsOf<M extends Method> = Omit<RequestOf<M>, 'type' | 'id'>;
export type ResultOf<M extends Method> = Omit<ResponseOf<M>, 'type' | 'id'>;

export const METHODS_BY_NAME: ReadonlyMap<string, Method> = new Map(METHODS.map((m) => [m.name, m]));

/** Server -> client pushes. */
export const Deliver = {
  name: 'deliver',
  schema: z.object({
    type: z.literal('deliver'),
    /** Position in the account mailbox; ack it. */
    seq: uint,
    /** Server receipt time, ms. */
    received: timestamp,
    envelope,
  }),
  summary:
    'A message for this account (or sent by another device of it). Delivered at least once; ack by seq.',
} as const;

export const Synced = {
  name: 'synced',
  schema: z.object({ type: z.literal('synced'), seq: uint }),
  summary: 'Everything stored for this device up to seq has been pushed; new messages follow as they arrive.',
} as const;

export const ErrorFrame = {
  name: 'error',
  schema: z.object({
    type: z.literal('error'),
    /** Id of the request this answers; absent for errors about the connection itself. */
    id: requestId.optional(),
    code: z.string(),
    message: z.string(),
  }),
  summary: 'A request failed, or the connection broke a rule (then it is closed).',
} as const;

export const PUSHES = [Deliver, Synced, ErrorFrame] as const;
export type DeliverFrame = z.infer<typeof Deliver.schema>;
export type SyncedFrame = z.infer<typeof Synced.schema>;
export type ErrorFrameT = z.infer<typeof ErrorFrame.schema>;
