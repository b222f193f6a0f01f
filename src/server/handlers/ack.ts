import { Ack } from '../../protocol/frames.js';
import type { Router } from '../router.js';

export function register(router: Router): void {
  router.handle(Ack, async ({ seq }, session, ctx) => {
    const account = session.account as string;
    const device = session.device as string;
    const upTo = Math.min(seq, session.pushed);
    const { store } = ctx;
    const cursor = await store.writes.submit(() => {
      const c = store.accounts.advanceCursor(account, device, upTo);
      // What every device of the account has received is no longer needed in the mailbox.
      const all = store.accounts.minCursor(account);
      if (all !== undefined && all > 0) store.mailbox.prune(account, all);
      return c;
    });
    ctx.delivery.acked(session, upTo);
    return { seq: cursor };
  });
}
