import { Ack } from '../../protocol/frames.js';
import type { Router } from '../router.js';

export function register(router: Router): void {
  router.handle(Ack, async ({ seq }, session, ctx) => {
    const account = session.account as string;
    const device = session.device as string;
    const upTo = Math.min(seq, session.pushed);
    const cursor = await ctx.store.writes.submit(() =>
      ctx.store.accounts.advanceCursor(account, device, upTo),
    );
    ctx.delivery.acked(session, upTo);
    return { seq: cursor };
  });
}
