import { encodeCbor } from '../../protocol/codec.js';
import { PmbError } from '../../protocol/errors.js';
import { Send } from '../../protocol/frames.js';
import type { Router } from '../router.js';

export function register(router: Router): void {
  router.handle(Send, async ({ envelope }, session, ctx) => {
    const { store, config } = ctx;
    const account = session.account as string;
    if (envelope.from !== account) throw new PmbError('forbidden', 'from must be your own fingerprint');
    const to = [...new Set(envelope.to)];
    if (to.length !== envelope.to.length) throw new PmbError('bad_message', 'Recipients repeat');
    if (to.length > config.limits.maxRecipients) throw new PmbError('too_many_recipients');
    if (envelope.body.length > config.limits.maxBodyBytes) {
      throw new PmbError('bad_message', `The body exceeds ${config.limits.maxBodyBytes} bytes`);
    }
    for (const fp of to) {
      if (!store.accounts.exists(fp))
        throw new PmbError('unknown_account', `No account ${fp} on this server`);
    }
    // The sender's own mailbox gets a copy too, for the sender's other devices.
    const accounts = to.includes(account) ? to : [...to, account];
    const encoded = encodeCbor(envelope);
    const result = await store.writes.submit(() =>
      store.mailbox.put(account, envelope.id, encoded, accounts, ctx.now()),
    );
    // Committed and fsynced: now it may be pushed and acknowledged.
    for (const e of result.entries) ctx.delivery.notify(e.account, e.seq, result.received, envelope, session);
    return { message: envelope.id, ts: result.received, duplicate: result.duplicate };
  });
}
