import { checkChainLink, decodeRecord, readPublicIdentity, verifyRecord } from '../crypto/index.js';
import { equalBytes, sha256 } from '../protocol/bytes.js';
import { PmbError } from '../protocol/errors.js';
import { bindingBody, type RecordPayload, type SignedRecord } from '../protocol/records.js';
import { encodeSigs, type Store } from '../store/index.js';
import { checkRecordBody } from './bodies.js';
import { acceptOverride } from './recovery.js';
import { acceptServerRecord } from './server-records.js';

export type RecordOutcome = 'accepted' | 'known';

/**
 * Verify and store an identity record learned from a peer (docs/federation.md, "Directory replication").
 * The subject's key must sign it; a binding must also be cosigned by the key pinned for its domain (a
 * domain not pinned yet is refused: the peer sends server records before the bindings they cosign, as
 * its feed holds them in that order). Chain rules as for server records: the next record is stored and
 * enters the feed, the same record is 'known', another record for a held seq is a fork (kept as
 * evidence), a seq beyond head + 1 is a gap (refused for now). Throws PmbError otherwise.
 */
export async function acceptIdentityRecord(
  store: Store,
  record: SignedRecord,
  publicKeyBytes: Uint8Array,
  now: number,
): Promise<{ outcome: RecordOutcome; payload: RecordPayload }> {
  const payload = decodeRecord(record);
  // Flooding brings the same record from several peers: one already held (same payload bytes, which were
  // verified when stored) changes nothing, so it is known without checking signatures again.
  const held = store.identities.hashAt(payload.subject, payload.seq);
  if (held && equalBytes(held, await sha256(record.payload))) return { outcome: 'known', payload };
  const key = await readPublicIdentity(publicKeyBytes);
  if (payload.kind === 'server') {
    const r = await acceptServerRecord(store, record, key, now);
    return { outcome: r.outcome, payload: r.payload };
  }
  // No signature listed for the subject: only an override signed by its recovery key may be that.
  if (!record.sigs.some((s) => s.by === payload.subject)) return acceptOverride(store, record, key, now);
  let binding: { nick: string; domain: string } | undefined;
  let verified: Awaited<ReturnType<typeof verifyRecord>>;
  if (payload.kind === 'binding') {
    const body = bindingBody.safeParse(payload.body);
    if (!body.success) throw new PmbError('bad_record', 'The binding body is malformed');
    binding = body.data;
    const pinned = store.identities.domainKey(body.data.domain);
    const pinnedBytes = pinned === undefined ? undefined : store.identities.publicKey(pinned);
    if (pinned === undefined || pinnedBytes === undefined) {
      throw new PmbError('bad_record', `registrar unknown: no server key is pinned for ${body.data.domain}`);
    }
    const registrar = await readPublicIdentity(pinnedBytes);
    verified = await verifyRecord(
      record,
      { subject: key, cosigners: [registrar] },
      { now, requireCosigner: true },
    );
  } else {
    await checkRecordBody(store, payload);
    verified = await verifyRecord(record, { subject: key }, { now });
  }
  const { hash } = verified;
  const subject = key.fingerprint;
  const verdict = await store.writes.submit((): RecordOutcome | 'stale' | 'fork' | 'gap' => {
    const head = store.identities.head(subject);
    if (payload.seq > (head?.seq ?? 0) + 1) return 'gap';
    const link = checkChainLink(head, payload);
    if (link === 'stale') {
      const same = store.identities.records(subject).find((r) => r.seq === payload.seq);
      if (same && equalBytes(same.hash, hash)) return 'known';
      if (!same) return 'stale';
    }
    if (link !== 'next') {
      store.identities.recordConflict(
        { subject, seq: payload.seq, payload: record.payload, sigs: encodeSigs(record.sigs), reason: 'fork' },
        now,
      );
      return 'fork';
    }
    store.identities.putIdentity(subject, key.publicKeyBytes, now);
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
    if (binding) {
      store.identities.setBinding(
        binding.nick,
        binding.domain,
        subject,
        payload.seq,
        payload.expires ?? null,
      );
    }
    return 'accepted';
  });
  if (verdict === 'gap') {
    throw new PmbError('record_gap', `Records of ${subject} before seq ${payload.seq} are missing here`);
  }
  if (verdict === 'stale') throw new PmbError('stale_record');
  if (verdict === 'fork') {
    throw new PmbError('record_fork', `The record contradicts the chain held for ${subject}`);
  }
  return { outcome: verdict, payload };
}
