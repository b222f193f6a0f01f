import { answersMatch, challengeAnswer } from '../../crypto/index.js';
import { PmbError } from '../../protocol/errors.js';
import { LoginFinish } from '../../protocol/frames.js';
import { storedToSigned } from '../../store/index.js';
import type { Router } from '../router.js';

export function register(router: Router): void {
  router.handle(LoginFinish, async (params, session, ctx) => {
    const pending = session.pendingLogin;
    if (!pending) throw new PmbError('login_failed', 'No login in progress on this connection');
    // Single use: whatever the outcome, this challenge is gone.
    session.pendingLogin = undefined;
    ctx.pendingLogins.release(session.address);
    if (ctx.now() > pending.expires) throw new PmbError('challenge_expired');
    const expected = await challengeAnswer({
      secret: pending.secret,
      server: ctx.identity.fingerprint,
      connection: session.id,
      expires: pending.expires,
    });
    if (!answersMatch(expected, params.answer)) {
      ctx.log.info({ account: pending.fingerprint, address: session.address }, 'login refused: wrong answer');
      throw new PmbError('login_failed', 'The answer does not match the challenge');
    }
    const { store } = ctx;
    const cursor = await store.writes.submit(() => {
      const now = ctx.now();
      if (pending.invite !== undefined && !store.accounts.exists(pending.fingerprint)) {
        // An identity moving in: an account is opened for it, spending an invite if the policy asks one.
        if (
          ctx.config.registration === 'invite' &&
          !store.accounts.useInvite(pending.invite, pending.fingerprint, now)
        ) {
          throw new PmbError('invite_required', 'The invite code is unknown, used or expired');
        }
        store.accounts.create(pending.fingerprint, now);
      }
      return store.accounts.openDevice(
        pending.fingerprint,
        pending.device,
        store.mailbox.head(pending.fingerprint),
        now,
      );
    });
    session.account = pending.fingerprint;
    session.device = pending.device;
    // Push the backlog after the ok frame went out.
    setImmediate(() => ctx.delivery.attach(session, cursor));
    return {
      fingerprint: pending.fingerprint,
      device: pending.device,
      bindings: store.identities
        .records(pending.fingerprint)
        .filter((r) => r.kind === 'binding')
        .map(storedToSigned),
      location: store.identities.location(pending.fingerprint) ?? ctx.config.domain,
    };
  });
}
