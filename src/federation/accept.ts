import { decodeRecord } from '../crypto/index.js';
import type { RecordPayload, SignedRecord } from '../protocol/records.js';
import type { Context } from '../server/context.js';
import type { Link } from './link.js';
import { acceptIdentityRecord, type RecordOutcome } from './records.js';

/**
 * The one way a record enters this server, whoever brought it (a peer's push or sync, a client's
 * record.publish): verified and stored by acceptIdentityRecord, then passed on to every other link, then
 * acted on (when the account's location changed, its mail follows). Throws PmbError for a refused record.
 */
export async function acceptRecord(
  ctx: Context,
  record: SignedRecord,
  publicKey: Uint8Array,
  from?: Link,
): Promise<{ outcome: RecordOutcome; payload: RecordPayload }> {
  const subject = decodeRecord(record).subject;
  const before = ctx.store.identities.location(subject);
  const r = await acceptIdentityRecord(ctx.store, record, publicKey, ctx.now());
  if (r.outcome === 'accepted') {
    ctx.gossip.announce(record, publicKey, from);
    // A location record, or a recovery override that removed one, may have moved the account.
    const after = ctx.store.identities.location(subject);
    if (after !== undefined && (after !== before || r.payload.kind === 'location')) {
      await ctx.mail.moved(subject, after);
    }
  }
  return r;
}

/**
 * Accept records fetched on demand (s2s.record), in order; one that is refused (or already held) does not
 * stop the others. Returns how many were new.
 */
export async function acceptFetched(
  ctx: Context,
  items: readonly { record: SignedRecord; publicKey: Uint8Array }[],
  from: Link,
): Promise<number> {
  let n = 0;
  for (const it of items) {
    try {
      if ((await acceptRecord(ctx, it.record, it.publicKey, from)).outcome === 'accepted') n++;
    } catch (err) {
      ctx.log.info({ domain: from.domain, err: (err as Error).message }, 'fetched record refused');
    }
  }
  return n;
}
