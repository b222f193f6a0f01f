import { z } from 'zod';
import { bytes, domain, fingerprint, nickname, timestamp, uint } from './schemas.js';

/**
 * Signed records say who controls what. The records of one identity form one hash chain: each names the
 * SHA-256 of the previous payload and carries the next sequence number. For one (subject, kind) the valid
 * record with the highest seq wins. The payload travels as the exact CBOR bytes that were signed.
 */
export const RECORD_KINDS = [
  'binding',
  'location',
  'devices',
  'revocation',
  'recovery',
  'profile',
  'server',
] as const;
export type RecordKind = (typeof RECORD_KINDS)[number];

export const bindingBody = z.object({
  nick: nickname,
  domain,
  /** Fingerprint of the registrar server that countersigns. */
  registrar: fingerprint,
});
export const locationBody = z.object({ domain, server: fingerprint });
export const revocationBody = z.object({ reason: z.string().max(200) });
/** A server's own record (subject = the server key): its domain and where to reach it. */
export const serverBody = z.object({
  domain,
  endpoints: z.object({
    ws: z
      .string()
      .max(300)
      .regex(/^wss?:\/\/[^\s]+$/, 'a ws:// or wss:// URL'),
  }),
  onion: z.string().max(100).optional(),
});
export type ServerBody = z.infer<typeof serverBody>;

export const recordPayload = z.object({
  v: z.literal(1),
  kind: z.enum(RECORD_KINDS),
  subject: fingerprint,
  seq: uint.min(1),
  /** SHA-256 of the previous record's payload bytes; null only for seq 1. */
  prev: bytes.nullable(),
  ts: timestamp,
  /** Absent: does not expire. */
  expires: timestamp.optional(),
  body: z.record(z.string(), z.unknown()),
});
export type RecordPayload = z.infer<typeof recordPayload>;

export const recordSignature = z.object({ by: fingerprint, sig: bytes.refine((b) => b.length <= 1024) });
export const signedRecord = z.object({
  payload: bytes.refine((b) => b.length <= 4096, 'record payloads are at most 4096 bytes'),
  sigs: z.array(recordSignature).min(1).max(4),
});
export type SignedRecord = z.infer<typeof signedRecord>;
export type RecordSignature = z.infer<typeof recordSignature>;

/** Default lifetime of a nickname binding. */
export const BINDING_TTL_MS = 365 * 24 * 3600 * 1000;
