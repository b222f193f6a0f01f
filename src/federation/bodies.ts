import { type PublicIdentity, readPublicIdentity, recoveryBody } from '../crypto/index.js';
import { PmbError } from '../protocol/errors.js';
import { locationBody, type RecordPayload } from '../protocol/records.js';
import type { Store } from '../store/index.js';

/**
 * The checks of a record's body beyond its schema, whoever signed it (the subject's key or its recovery
 * key): a location must name the key pinned for its domain, when one is pinned; a recovery record must name
 * a usable key. Throws PmbError('bad_record').
 */
export async function checkRecordBody(store: Store, payload: RecordPayload): Promise<void> {
  if (payload.kind === 'location') {
    const body = locationBody.safeParse(payload.body);
    if (!body.success) throw new PmbError('bad_record', 'The location body is malformed');
    const pinned = store.identities.domainKey(body.data.domain);
    if (pinned !== undefined && pinned !== body.data.server) {
      throw new PmbError(
        'bad_record',
        `The location names ${body.data.server}, but ${body.data.domain} is ${pinned}`,
      );
    }
  }
  if (payload.kind === 'recovery') await checkRecoveryRecord(payload);
}

/**
 * A recovery record (signed by the daily key) must name a usable key that is not the daily key itself:
 * a record naming garbage would leave the owner believing he can recover when he cannot.
 */
export async function checkRecoveryRecord(payload: RecordPayload): Promise<void> {
  const body = recoveryBody.safeParse(payload.body);
  if (!body.success) throw new PmbError('bad_record', 'The recovery body is malformed');
  let key: PublicIdentity;
  try {
    key = await readPublicIdentity(body.data.key);
  } catch (cause) {
    throw new PmbError('bad_record', 'The recovery record names no usable public key', { cause });
  }
  if (key.fingerprint === payload.subject) {
    throw new PmbError('bad_record', 'The recovery key must be another key than the identity’s own');
  }
}
