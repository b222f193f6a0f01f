import {
  checkOverride,
  decodeRecord,
  type PublicIdentity,
  readPublicIdentity,
  recoveryBody,
  recoveryKeyBefore,
  verifyOverride,
} from '../crypto/index.js';
import { equalBytes } from '../protocol/bytes.js';
import { PmbError } from '../protocol/errors.js';
import type { RecordPayload, SignedRecord } from '../protocol/records.js';
import { encodeSigs, type Store, type StoredRecord, storedToSigned } from '../store/index.js';
import { checkRecordBody } from './bodies.js';

type Verdict = 'accepted' | 'known' | 'gap' | 'fork' | 'changed' | { refused: PmbError };

/**
 * A record of `subject` signed by its recovery key instead of its own key: an override (docs/federation.md,
 * "Recovery key"). It names seq n and prev = hash of record n - 1; the key that signs it is the one named
 * by the newest recovery record before n; every held record from n on must be younger than that record's
 * window. Then those records leave the chain (kept in record_conflicts as 'overridden', their feed rows and
 * the bindings they set removed) and the override takes seq n. A record that follows the head is simply
 * appended (a server that never saw what was overridden). Throws PmbError for anything else.
 */
export async function acceptOverride(
  store: Store,
  record: SignedRecord,
  key: PublicIdentity,
  now: number,
): Promise<{ outcome: 'accepted' | 'known'; payload: RecordPayload }> {
  const payload = decodeRecord(record);
  const subject = payload.subject;
  if (key.fingerprint !== subject) {
    throw new PmbError('bad_signature', 'The record is about another identity than the key given');
  }
  if (payload.kind === 'binding' || payload.kind === 'server') {
    throw new PmbError('bad_record', `A ${payload.kind} record cannot be signed by a recovery key`);
  }
  await checkRecordBody(store, payload);

  // Which key may sign: found outside the write (verifying is async), checked again inside it.
  const held = chainOf(store, subject);
  const head = held.reduce((m, p) => Math.max(m, p.seq), 0);
  if (payload.seq > head + 1) {
    throw new PmbError('record_gap', `Records of ${subject} before seq ${payload.seq} are missing here`);
  }
  const signers = new Set(record.sigs.map((s) => s.by));
  if (!(await namedRecoveryKeys(held)).some((fp) => signers.has(fp))) {
    throw new PmbError(
      'bad_signature',
      "The record is signed by neither its subject's key nor a recovery key its chain names",
    );
  }
  const first = checkOverride(held, payload.seq, now);
  if (!first.ok && first.code !== 'stale_record') throw new PmbError(first.code, first.message);
  const inForce = recoveryKeyBefore(held, payload.seq);
  if (!inForce) throw new PmbError('forbidden', `No recovery record comes before seq ${payload.seq}`);
  const recovery = await readPublicIdentity(inForce.key);
  if (!signers.has(recovery.fingerprint)) {
    throw new PmbError(
      'forbidden',
      `The recovery key that signed this is not the one in force before seq ${payload.seq}`,
    );
  }
  const { hash } = await verifyOverride(record, { subject, recovery }, { now });

  const verdict = await store.writes.submit((): Verdict => {
    const records = store.identities.records(subject);
    const same = records.find((r) => r.seq === payload.seq);
    if (same && equalBytes(same.hash, hash)) return 'known';
    const check = checkOverride(records.map(aged), payload.seq, now);
    if (!check.ok) {
      return check.code === 'record_gap' ? 'gap' : { refused: new PmbError(check.code, check.message) };
    }
    if (!equalBytes(check.recovery.key, inForce.key)) return 'changed';
    const before = records.find((r) => r.seq === payload.seq - 1);
    if (!before || payload.prev === null || !equalBytes(payload.prev, before.hash)) {
      store.identities.recordConflict(
        { subject, seq: payload.seq, payload: record.payload, sigs: encodeSigs(record.sigs), reason: 'fork' },
        now,
      );
      return 'fork';
    }
    for (const r of store.identities.truncate(subject, payload.seq)) {
      store.identities.recordConflict(
        { subject, seq: r.seq, payload: r.payload, sigs: r.sigs, reason: 'overridden' },
        now,
      );
    }
    store.identities.appendRecord({
      subject,
      seq: payload.seq,
      kind: payload.kind,
      hash,
      payload: record.payload,
      sigs: encodeSigs(record.sigs),
      expires: payload.expires ?? null,
      received: now,
    });
    store.identities.forgetLocation(subject);
    return 'accepted';
  });
  if (verdict === 'gap') {
    throw new PmbError('record_gap', `Records of ${subject} before seq ${payload.seq} are missing here`);
  }
  if (verdict === 'fork') {
    throw new PmbError('record_fork', `The override does not follow the chain held for ${subject}`);
  }
  if (verdict === 'changed') {
    throw new PmbError('record_fork', `The recovery key of ${subject} changed meanwhile; try again`);
  }
  if (typeof verdict === 'object') throw verdict.refused;
  return { outcome: verdict, payload };
}

/** Fingerprints of every key the chain's recovery records name. */
async function namedRecoveryKeys(chain: readonly RecordPayload[]): Promise<string[]> {
  const out: string[] = [];
  for (const p of chain) {
    const body = p.kind === 'recovery' ? recoveryBody.safeParse(p.body) : undefined;
    if (!body?.success) continue;
    try {
      out.push((await readPublicIdentity(body.data.key)).fingerprint);
    } catch {
      // Checked when the record was accepted; a key that no longer reads names nobody.
    }
  }
  return out;
}

/** The payloads of the chain held for `subject` (all verified when they were stored), aged as below. */
function chainOf(store: Store, subject: string): RecordPayload[] {
  return store.identities.records(subject).map(aged);
}

/**
 * A held record's payload with `ts` = the later of its signed ts and when this server first stored it: the
 * age the recovery window is judged by, so a thief cannot backdate a record out of the owner's reach.
 */
function aged(r: StoredRecord): RecordPayload {
  const p = decodeRecord(storedToSigned(r));
  return r.received == null || r.received <= p.ts ? p : { ...p, ts: Number(r.received) };
}
