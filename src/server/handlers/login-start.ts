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
    if (!session.pendingLogin && ctx.pendingLogins >= ctx.config.limits.pendingLogins) {
      throw new PmbError('too_many_pending_logins');
    }
    const { secret, encrypted } = await makeChallenge(account);
    const expires = ctx.now() + ctx.config.limits.challengeTtlMs;
    // A new start replaces an older challenge on this connection: only the latest can be answered.
    if (!session.pendingLogin) ctx.pendingLogins++;
    session.pendingLogin = { fingerprint: params.fingerprint, device: params.device, secret, expires };
    return { challenge: encrypted, expires };
  });
}
