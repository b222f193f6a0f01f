import { Ping } from '../../protocol/frames.js';
import type { Router } from '../router.js';

export function register(router: Router): void {
  router.handle(Ping, (_params, _session, ctx) => ({ time: ctx.now() }));
}
