import { makeChallenge } from '../../crypto/index.js';
import { PmbError } from '../../protocol/errors.js';
import { LoginStart } from '../../protocol/frames.js';
import type { Router } from '../router.js';

export function register(router: Router): void {
  router.handle(LoginStart, async (params, session, ctx) => {
    if (session.authed) throw new PmbError('already_logged_in');
    // Any identity this server knows may log in: one registered elsewhere is moving here (its client then
    // publishes a location record), which this server's registration policy must allow.
    const moving = !ctx.store.accounts.exists(params.fingerprint);
    if (moving) {
      if (ctx.store.identities.homes(params.fingerprint).length === 0) throw new PmbError('unknown_account');
      if (ctx.config.registration === 'closed') throw new PmbError('registration_closed');
      if (ctx.config.registration === 'invite' && !params.invite) throw new PmbError('invite_required');
    }
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
    session.pendingLogin = {
      fingerprint: params.fingerprint,
      device: params.device,
      secret,
      expires,
      ...(moving ? { invite: params.invite ?? '' } : {}),
    };
    return { challenge: encrypted, expires };
  });
}
