import { z } from 'zod';
import { equalBytes, sha256 } from '../protocol/bytes.js';
import { decodeCanonicalCbor } from '../protocol/codec.js';
import { PmbError } from '../protocol/errors.js';
import { type RecordPayload, recordPayload, type SignedRecord, signedRecord } from '../protocol/records.js';
import { bytes, uint } from '../protocol/schemas.js';
import { verificationDate } from './config.js';
import { encodeMap } from './encode.js';
import type { Identity, PublicIdentity } from './keys.js';
import { signBytes, verifyBytes } from './signature.js';

const MAX_SIGS = 4;
const MAX_PAYLOAD_BYTES = 4096;

declare const verifiedBrand: unique symbol;
/**
 * A value that only verifyRecord hands out (nostr-tools' pattern): code that needs a checked record takes
 * Verified<...> and the compiler refuses anything that did not go through verification.
 */
export type Verified<T> = T & { readonly [verifiedBrand]: true };

/** A new record signed by `signer`. The payload bytes are the CBOR of {v: 1, ...payload}, in that order. */
export async function createRecord(
  signer: Identity,
  payload: Omit<RecordPayload, 'v'>,
): Promise<SignedRecord> {
  const full = { v: 1, ...payload };
  const parsed = recordPayload.safeParse(full);
  if (!parsed.success) throw new PmbError('bad_record', `Invalid record payload: ${parsed.error.message}`);
  // Fresh ArrayBuffer-backed copies fit SignedRecord whichever byte type the protocol schema infers.
  const bytes = new Uint8Array(encodeMap(full));
  if (bytes.length > MAX_PAYLOAD_BYTES) {
    throw new PmbError('bad_record', `Record payloads are at most ${MAX_PAYLOAD_BYTES} bytes`);
  }
  return { payload: bytes, sigs: [{ by: signer.fingerprint, sig: await signBytes(signer, bytes) }] };
}

/**
 * Adds `signer`'s signature over the same payload bytes (a registrar countersigning a binding). A signature
 * already listed for the signer is replaced, so each signer appears once and its signature is fresh.
 */
export async function cosignRecord(signer: Identity, record: SignedRecord): Promise<SignedRecord> {
  decodeRecord(record);
  const others = record.sigs.filter((s) => s.by !== signer.fingerprint);
  if (others.length >= MAX_SIGS)
    throw new PmbError('bad_record', `A record carries at most ${MAX_SIGS} signatures`);
  const sig = await signBytes(signer, record.payload);
  return { payload: record.payload, sigs: [...others, { by: signer.fingerprint, sig }] };
}

/** Decodes and schema-checks the payload. Says nothing about signatures: see verifyRecord. */
export function decodeRecord(record: SignedRecord): RecordPayload {
  const shape = signedRecord.safeParse(record);
  if (!shape.success) throw new PmbError('bad_record', `Invalid signed record: ${shape.error.message}`);
  let decoded: unknown;
  try {
    decoded = decodeCanonicalCbor(record.payload);
  } catch (cause) {
    throw new PmbError('bad_record', 'The record payload is not CBOR', { cause });
  }
  const parsed = recordPayload.safeParse(decoded);
  if (!parsed.success) throw new PmbError('bad_record', `Invalid record payload: ${parsed.error.message}`);
  return parsed.data;
}

/**
 * Checks a record: a valid signature by the subject's key, when requireCosigner one by a cosigner too
 * (signatures by anyone else are ignored), and not expired at `now`. Returns the payload and its hash,
 * which the next record of the chain names as prev.
 */
export async function verifyRecord(
  record: SignedRecord,
  keys: { subject: PublicIdentity; cosigners?: PublicIdentity[] },
  opts: { now?: number; requireCosigner?: boolean } = {},
): Promise<Verified<{ record: SignedRecord; payload: RecordPayload; hash: Uint8Array }>> {
  const payload = decodeRecord(record);
  if (payload.subject !== keys.subject.fingerprint) {
    throw new PmbError('bad_signature', 'The record is about another identity than the key given');
  }
  const now = opts.now ?? Date.now();
  const date = verificationDate(now);
  if (!(await signedBy(record, keys.subject, date))) {
    throw new PmbError('bad_signature', "The record has no valid signature by its subject's key");
  }
  if (opts.requireCosigner) {
    let cosigned = false;
    for (const cosigner of keys.cosigners ?? []) {
      if (cosigner.fingerprint === keys.subject.fingerprint) continue;
      if (await signedBy(record, cosigner, date)) {
        cosigned = true;
        break;
      }
    }
    if (!cosigned)
      throw new PmbError('bad_signature', 'The record has no valid signature by a required cosigner');
  }
  if (payload.expires !== undefined && payload.expires <= now) {
    throw new PmbError('expired', 'The record has expired');
  }
  const hash = await sha256(record.payload);
  return { record, payload, hash } as Verified<{
    record: SignedRecord;
    payload: RecordPayload;
    hash: Uint8Array;
  }>;
}

/** SHA-256 of the payload bytes: what the next record of the chain names as prev. */
export async function recordHash(record: SignedRecord): Promise<Uint8Array<ArrayBuffer>> {
  return new Uint8Array(await sha256(record.payload));
}

/**
 * How `next` relates to the head of the chain held for its subject. A record that neither extends the
 * head nor is older than it does not link on: that is a fork, or a gap (seq beyond head.seq + 1), which
 * is reported as 'fork' too, since it cannot be accepted until the missing records are fetched. Two
 * records with the same seq are told apart by the caller, who has the stored hash.
 */
export function checkChainLink(
  prevHead: { seq: number; hash: Uint8Array } | undefined,
  next: RecordPayload,
): 'next' | 'stale' | 'fork' {
  if (!prevHead) return next.seq === 1 && next.prev === null ? 'next' : 'fork';
  if (next.seq <= prevHead.seq) return 'stale';
  if (next.seq === prevHead.seq + 1 && next.prev !== null && equalBytes(next.prev, prevHead.hash))
    return 'next';
  return 'fork';
}

/** True when one of the signatures listed under `key`'s fingerprint verifies with that key. */
async function signedBy(record: SignedRecord, key: PublicIdentity, date: Date): Promise<boolean> {
  for (const { by, sig } of record.sigs) {
    // An invalid signature is as good as none; another entry may still verify.
    if (by === key.fingerprint && (await verifyBytes(key, record.payload, sig, date))) return true;
  }
  return false;
}

/** How long records stay open to an override by the recovery key, unless the recovery record says otherwise. */
export const RECOVERY_WINDOW_DAYS = 30;
export const MAX_RECOVERY_WINDOW_DAYS = 365;
const DAY_MS = 24 * 3600 * 1000;

/**
 * Body of a `recovery` record (docs/federation.md, "Recovery key"): the recovery public key (binary, as
 * publicKey elsewhere on the wire) and how many days a record stays open to an override by it.
 */
export const recoveryBody = z.object({
  key: bytes.refine((b) => b.length > 0 && b.length <= 8192, 'a public key of at most 8 KiB'),
  windowDays: uint.min(1).max(MAX_RECOVERY_WINDOW_DAYS).optional(),
});

/** The recovery key in force for an override at `seq`: named by the newest recovery record before it. */
export function recoveryKeyBefore(
  chain: readonly RecordPayload[],
  seq: number,
): { seq: number; key: Uint8Array; windowDays: number } | undefined {
  let found: { seq: number; key: Uint8Array; windowDays: number } | undefined;
  for (const p of chain) {
    if (p.seq >= seq || p.kind !== 'recovery') continue;
    const body = recoveryBody.safeParse(p.body);
    if (!body.success) continue;
    if (!found || p.seq > found.seq) {
      found = { seq: p.seq, key: body.data.key, windowDays: body.data.windowDays ?? RECOVERY_WINDOW_DAYS };
    }
  }
  return found;
}

export type OverrideCheck =
  | {
      ok: true;
      /** The recovery record whose key may sign the override. */
      recovery: { seq: number; key: Uint8Array; windowDays: number };
      /** The held records the override removes (seq >= the override's), oldest first. */
      replaced: RecordPayload[];
    }
  | { ok: false; code: 'record_gap' | 'forbidden' | 'stale_record'; message: string };

/**
 * The chain rule of an override at `seq` against the records held (a whole chain from seq 1, any order):
 * a recovery record must come before it (its key signs the override; checked by the caller with
 * verifyOverride), it may follow the head or replace held records, and every record it replaces must be
 * younger than that recovery record's window at `now`. The caller also checks prev against the hash of
 * record seq - 1.
 */
export function checkOverride(chain: readonly RecordPayload[], seq: number, now: number): OverrideCheck {
  const head = chain.reduce((m, p) => Math.max(m, p.seq), 0);
  if (seq > head + 1) {
    return { ok: false, code: 'record_gap', message: `Records before seq ${seq} are missing here` };
  }
  const recovery = recoveryKeyBefore(chain, seq);
  if (!recovery) {
    return {
      ok: false,
      code: 'forbidden',
      message: `No recovery record comes before seq ${seq}: a recovery key overrides only records after the one that names it`,
    };
  }
  const replaced = chain.filter((p) => p.seq >= seq).sort((a, b) => a.seq - b.seq);
  const oldest = now - recovery.windowDays * DAY_MS;
  const old = replaced.find((p) => p.ts <= oldest);
  if (old) {
    return {
      ok: false,
      code: 'stale_record',
      message: `Record ${old.seq} is older than the recovery window of ${recovery.windowDays} days: it can no longer be overridden`,
    };
  }
  return { ok: true, recovery, replaced };
}

/**
 * Checks a record signed by a recovery key instead of the subject's key: the payload names `subject`, a
 * valid signature by `recovery` is listed, it has not expired. The chain rule is checkOverride's.
 */
export async function verifyOverride(
  record: SignedRecord,
  keys: { subject: string; recovery: PublicIdentity },
  opts: { now?: number } = {},
): Promise<Verified<{ record: SignedRecord; payload: RecordPayload; hash: Uint8Array }>> {
  const payload = decodeRecord(record);
  if (payload.subject !== keys.subject) {
    throw new PmbError('bad_signature', 'The record is about another identity than the one given');
  }
  const now = opts.now ?? Date.now();
  if (!(await signedBy(record, keys.recovery, verificationDate(now)))) {
    throw new PmbError('bad_signature', 'The record is signed by neither its subject nor its recovery key');
  }
  if (payload.expires !== undefined && payload.expires <= now) {
    throw new PmbError('expired', 'The record has expired');
  }
  const hash = await sha256(record.payload);
  return { record, payload, hash } as Verified<{
    record: SignedRecord;
    payload: RecordPayload;
    hash: Uint8Array;
  }>;
}
