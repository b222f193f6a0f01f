import { Ack } from '../../protocol/frames.js';
import type { Router } from '../router.js';

export function register(router: Router): void {
  router.handle(Ack, async ({ seq }, session, ctx) => {
    const upTo = Math.min(seq, session.pushed);
    // Answered once the cursor is on disk: an answered ack is never undone by a crash (protocol.md 10.4).
    await ctx.delivery.acked(session, upTo);
    return { seq: upTo };
  });
}
