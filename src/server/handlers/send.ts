import { PmbError } from '../../protocol/errors.js';
import { Send } from '../../protocol/frames.js';
import type { Router } from '../router.js';

export function register(router: Router): void {
  router.handle(Send, async ({ envelope }, session, ctx) => {
    const { config, mail } = ctx;
    const account = session.account as string;
    if (envelope.from !== account) throw new PmbError('forbidden', 'from must be your own fingerprint');
    const to = [...new Set(envelope.to)];
    if (to.length !== envelope.to.length) throw new PmbError('bad_message', 'Recipients repeat');
    if (to.length > config.limits.maxRecipients) throw new PmbError('too_many_recipients');
    if (envelope.body.length > config.limits.maxBodyBytes) {
      throw new PmbError('bad_message', `The body exceeds ${config.limits.maxBodyBytes} bytes`);
    }
    if (!mail.isHere(account)) {
      throw new PmbError('moved', `This account has moved to ${mail.home(account) ?? 'another server'}`);
    }
    // Recipients hosted here get mailbox entries, the others an outbox row per server; the sender's own
    // mailbox gets a copy too when the sender has other devices.
    const routes = mail.route(to.filter((fp) => fp !== account));
    routes.copyToSender = { account, device: session.device as string };
    // A server that takes no mail (down, cut off) must not fill this one's disk: past outboxPerServer
    // waiting messages, new mail for it is refused (a retry of one already held is still answered).
    for (const domain of routes.remote.keys()) {
      const waiting = ctx.store.outbox.count(domain);
      if (waiting >= config.limits.outboxPerServer && !ctx.store.mailbox.has(account, envelope.id)) {
        throw new PmbError(
          'unreachable',
          `${domain} has not taken the ${waiting} messages already waiting for it; try again later`,
        );
      }
    }
    const result = await mail.store(envelope, routes, session);
    // Committed and fsynced: acknowledged only now.
    return { message: envelope.id, ts: result.received, duplicate: result.duplicate };
  });
}
