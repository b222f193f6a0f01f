import { makeChallenge } from '../../crypto/index.js';
import { PmbError } from '../../protocol/errors.js';
import { LoginStart } from '../../protocol/frames.js';
import type { Router } from '../router.js';

export function register(router: Router): void {
  router.handle(LoginStart, async (params, session, ctx) => {
    if (session.authed) throw new PmbError('already_logged_in');
    if (!ctx.store.accounts.exists(params.fingerprint)) throw new PmbError('unknown_account');
    const account = await ctx.publicIdentity(params.fingerprint);
    if (!account) throw new PmbError('unknown_account');
    const { secret, encrypted } = await makeChallenge(account);
    // Counted only now, with no await left before the challenge is kept, so nothing can leak a slot.
    if (session.closed) throw new PmbError('unavailable');
    if (!session.pendingLogin && !ctx.pendingLogins.take(session.address)) {
      throw new PmbError('too_many_pending_logins');
    }
    const expires = ctx.now() + ctx.config.limits.challengeTtlMs;
    // A new start replaces an older challenge on this connection: only the latest can be answered.
    session.pendingLogin = { fingerprint: params.fingerprint, device: params.device, secret, expires };
    return { challenge: encrypted, expires };
  });
}
