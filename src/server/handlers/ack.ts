import { Ack } from '../../protocol/frames.js';
import type { Router } from '../router.js';

export function register(router: Router): void {
  router.handle(Ack, ({ seq }, session, ctx) => {
    const upTo = Math.min(seq, session.pushed);
    ctx.delivery.acked(session, upTo);
    return { seq: upTo };
  });
}
