import { decodeRecord } from '../../crypto/index.js';
import { acceptRecord } from '../../federation/accept.js';
import { PmbError } from '../../protocol/errors.js';
import { Publish } from '../../protocol/frames.js';
import type { Router } from '../router.js';

export function register(router: Router): void {
  router.handle(Publish, async ({ record }, session, ctx) => {
    const account = session.account as string;
    const payload = decodeRecord(record);
    if (payload.subject !== account)
      throw new PmbError('forbidden', 'You can publish records of your own identity only');
    if (payload.kind === 'binding' || payload.kind === 'server') {
      throw new PmbError('bad_record', `A ${payload.kind} record is not published this way`);
    }
    const key = ctx.store.identities.publicKey(account);
    if (!key) throw new PmbError('unknown_account');
    // Verified, stored (fsynced), passed on to every linked server, and acted on (a location moves mail).
    const r = await acceptRecord(ctx, record, key);
    return { accepted: r.outcome === 'accepted' };
  });
}
