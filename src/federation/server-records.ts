import {
  checkChainLink,
  createRecord,
  decodeRecord,
  type Identity,
  type PublicIdentity,
  readPublicIdentity,
  verifyRecord,
} from '../crypto/index.js';
import { equalBytes } from '../protocol/bytes.js';
import { PmbError } from '../protocol/errors.js';
import { type RecordPayload, type ServerBody, type SignedRecord, serverBody } from '../protocol/records.js';
import { encodeSigs, type Store, storedToSigned } from '../store/index.js';

/**
 * Server records: a server's signed statement of its domain and endpoints, chained like an identity's
 * records (docs/federation.md). The first key seen for a domain is pinned; another key for that domain is
 * refused unless its record is also signed by the pinned key (a planned key rotation).
 */

function sameBody(a: ServerBody, b: ServerBody): boolean {
  return a.domain === b.domain && a.endpoints.ws === b.endpoints.ws && a.onion === b.onion;
}

/** The server's own record as it is now: the stored head if it still says the same, else a new one (seq+1). */
export async function ensureOwnServerRecord(
  store: Store,
  server: Identity,
  body: ServerBody,
  now: number,
): Promise<SignedRecord> {
  const held = store.identities.records(server.fingerprint).filter((r) => r.kind === 'server');
  const latest = held.at(-1);
  if (latest) {
    const signed = storedToSigned(latest);
    const current = serverBody.safeParse(decodeRecord(signed).body);
    if (current.success && sameBody(current.data, body)) return signed;
  }
  const head = store.identities.head(server.fingerprint);
  const record = await createRecord(server, {
    kind: 'server',
    subject: server.fingerprint,
    seq: (head?.seq ?? 0) + 1,
    prev: head?.hash ?? null,
    ts: now,
    body,
  });
  await acceptServerRecord(store, record, server, now);
  return record;
}

export type ServerRecordOutcome = 'accepted' | 'known';

/**
 * Verify and store a server record (from discovery, a peer, or the server itself). Throws PmbError:
 * bad_record / bad_signature for a forged or malformed record, stale_record for a replay of an older one,
 * record_fork for a record contradicting the chain held (kept as evidence), wrong_server when the domain
 * is pinned to another key.
 */
export async function acceptServerRecord(
  store: Store,
  record: SignedRecord,
  key: PublicIdentity,
  now: number,
): Promise<{ outcome: ServerRecordOutcome; payload: RecordPayload; body: ServerBody }> {
  const verified = await verifyRecord(record, { subject: key }, { now });
  const { payload, hash } = verified;
  if (payload.kind !== 'server') throw new PmbError('bad_record', 'Expected a server record');
  const parsed = serverBody.safeParse(payload.body);
  if (!parsed.success) throw new PmbError('bad_record', 'The server record body is malformed');
  const body = parsed.data;
  // A rotation: a record for an already pinned domain must also carry a valid signature by the pinned key.
  const pinned = store.identities.domainKey(body.domain);
  let rotationOk = false;
  if (pinned !== undefined && pinned !== key.fingerprint) {
    const pinnedKey = await publicKeyOf(store, pinned);
    if (pinnedKey && record.sigs.some((s) => s.by === pinned)) {
      try {
        await verifyRecord(
          record,
          { subject: key, cosigners: [pinnedKey] },
          {
            now,
            requireCosigner: true,
          },
        );
        rotationOk = true;
      } catch {
        rotationOk = false;
      }
    }
  }
  // Decided inside the write; evidence of a fork is committed, then the fork is reported.
  const verdict = await store.writes.submit((): ServerRecordOutcome | 'stale' | 'fork' | 'pinned' => {
    const pin = store.identities.domainKey(body.domain);
    if (pin !== undefined && pin !== key.fingerprint && !rotationOk) return 'pinned';
    const head = store.identities.head(key.fingerprint);
    const link = checkChainLink(head, payload);
    const sameSeq = () => store.identities.records(key.fingerprint).find((r) => r.seq === payload.seq);
    if (link === 'stale') {
      const same = sameSeq();
      if (same && equalBytes(same.hash, hash)) return 'known';
      if (!same) return 'stale';
    }
    if (link !== 'next') {
      store.identities.recordConflict(
        {
          subject: key.fingerprint,
          seq: payload.seq,
          payload: record.payload,
          sigs: encodeSigs(record.sigs),
          reason: 'fork',
        },
        now,
      );
      return 'fork';
    }
    store.identities.putIdentity(key.fingerprint, key.publicKeyBytes, now);
    store.identities.appendRecord({
      subject: key.fingerprint,
      seq: payload.seq,
      kind: payload.kind,
      hash,
      payload: record.payload,
      sigs: encodeSigs(record.sigs),
      expires: payload.expires ?? null,
      received: now,
    });
    // Newest record wins: a record of a server that moved to another domain re-pins that domain.
    store.identities.pinDomainKey(body.domain, key.fingerprint, now);
    return 'accepted';
  });
  if (verdict === 'pinned') {
    throw new PmbError(
      'wrong_server',
      `${body.domain} belongs to server ${store.identities.domainKey(body.domain)}; ${key.fingerprint} cannot claim it`,
    );
  }
  if (verdict === 'stale') throw new PmbError('stale_record');
  if (verdict === 'fork') {
    throw new PmbError('record_fork', `The record contradicts the chain held for server ${key.fingerprint}`);
  }
  const outcome = verdict;
  return { outcome, payload, body };
}

async function publicKeyOf(store: Store, fingerprint: string): Promise<PublicIdentity | undefined> {
  const bytes = store.identities.publicKey(fingerprint);
  return bytes ? readPublicIdentity(bytes) : undefined;
}

/**
 * The held server records (with keys) of the servers pinned for `domains`: what a lookup or an s2s.record
 * answer carries so the reader can check registrar cosignatures and find the servers' endpoints.
 */
export function pinnedServerItems(
  store: Store,
  domains: readonly string[],
): { record: SignedRecord; publicKey: Uint8Array }[] {
  const ids = store.identities;
  const items: { record: SignedRecord; publicKey: Uint8Array }[] = [];
  for (const domain of domains) {
    const fp = ids.domainKey(domain);
    const key = fp === undefined ? undefined : ids.publicKey(fp);
    if (fp === undefined || key === undefined) continue;
    const newest = ids.records(fp).at(-1);
    if (newest) items.push({ record: storedToSigned(newest), publicKey: key });
  }
  return items;
}
