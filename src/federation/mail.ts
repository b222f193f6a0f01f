import { decodeCbor, encodeCbor } from '../protocol/codec.js';
import { PmbError } from '../protocol/errors.js';
import type { Envelope } from '../protocol/frames.js';
import type { Context } from '../server/context.js';
import type { Session } from '../server/session.js';
import type { StoreResult } from '../store/index.js';
import { type OutboxOptions, OutboxWorker } from './outbox.js';

/** Where one envelope goes: accounts hosted here, and per other server the recipients it hosts. */
export interface Routes {
  local: string[];
  remote: Map<string, string[]>;
  /**
   * The sender's own account (hosted here) gets a copy for its other devices, if it has any when the write
   * commits: a new device starts at the mailbox head, so with none a copy would only be written and pruned.
   */
  copyToSender?: { account: string; device: string };
}

/**
 * Mail across servers (docs/federation.md, "Cross-server delivery" and "Moving accounts"): which server
 * hosts an identity, storing an envelope for the local recipients and in the outbox for the others in one
 * durable write, and what happens here when an account moves.
 */
export class Mail {
  readonly outbox: OutboxWorker;

  constructor(
    private readonly ctx: Context,
    opts: OutboxOptions = {},
  ) {
    this.outbox = new OutboxWorker(ctx, opts);
  }

  start(): void {
    this.outbox.start();
  }

  close(): void {
    this.outbox.close();
  }

  /** The domain hosting `fp` (its newest location, else its binding's domain); undefined: unknown. */
  home(fp: string): string | undefined {
    return this.ctx.store.identities.location(fp);
  }

  /** true when `fp` is hosted here. */
  isHere(fp: string): boolean {
    return this.home(fp) === this.ctx.config.domain && this.ctx.store.accounts.exists(fp);
  }

  /** Split recipients into local accounts and other servers. Throws unknown_account for nobody known. */
  route(recipients: readonly string[]): Routes {
    const here = this.ctx.config.domain;
    const routes: Routes = { local: [], remote: new Map() };
    for (const fp of recipients) {
      const home = this.home(fp);
      if (home === here && this.ctx.store.accounts.exists(fp)) routes.local.push(fp);
      else if (home !== undefined && home !== here) {
        const list = routes.remote.get(home) ?? [];
        list.push(fp);
        routes.remote.set(home, list);
      } else throw new PmbError('unknown_account', `Nobody known as ${fp} is hosted anywhere`);
    }
    return routes;
  }

  /**
   * Store an envelope durably: mailbox entries for the local accounts and one outbox row per other server,
   * in one group-committed write (resolves after fsync). A (sender, id) held before is a duplicate and
   * queues nothing again. Then pushes to online devices (not back to `origin`) and wakes the outbox.
   */
  async store(envelope: Envelope, routes: Routes, origin?: Session): Promise<StoreResult> {
    const { store } = this.ctx;
    const encoded = encodeCbor(envelope);
    const now = this.ctx.now();
    const result = await store.writes.submit(() => {
      const copy = routes.copyToSender;
      const local =
        copy && store.accounts.hasOtherDevice(copy.account, copy.device)
          ? [...routes.local, copy.account]
          : routes.local;
      const r = store.mailbox.put(envelope.from, envelope.id, encoded, local, now);
      if (!r.duplicate) {
        for (const [domain, targets] of routes.remote) {
          store.outbox.put(domain, envelope.from, envelope.id, targets, encoded, now);
        }
      }
      return r;
    });
    for (const e of result.entries) {
      this.ctx.delivery.notify(e.account, e.seq, result.received, envelope, origin);
    }
    if (!result.duplicate) for (const domain of routes.remote.keys()) this.outbox.kick(domain);
    return result;
  }

  /**
   * A location record moved `subject` to `domain` (already verified and stored). Here: outbox rows for the
   * subject follow it; if it was hosted here, its devices are told and disconnected, and its undelivered
   * mail is forwarded. If it moved here, rows queued for it elsewhere come home.
   */
  async moved(subject: string, domain: string): Promise<void> {
    const { store, config, log } = this.ctx;
    const here = config.domain;
    const now = this.ctx.now();
    const hosted = store.accounts.exists(subject);
    const notify: { account: string; seq: number; received: number; envelope: Uint8Array }[] = [];
    const counts = await store.writes.submit(() => {
      let rerouted = 0;
      let forwarded = 0;
      if (domain === here) store.accounts.create(subject, now);
      for (const row of store.outbox.namingTarget(subject, domain)) {
        const others = row.targets.filter((t) => t !== subject);
        if (others.length > 0) store.outbox.update(row.seq, row.domain, others);
        else store.outbox.remove([row.seq]);
        if (domain === here) {
          const r = store.mailbox.put(row.sender, row.id, row.envelope, [subject], now);
          for (const e of r.entries) notify.push({ ...e, received: r.received, envelope: row.envelope });
        } else {
          store.outbox.put(domain, row.sender, row.id, [subject], row.envelope, now);
        }
        rerouted++;
      }
      if (domain !== here && hosted) {
        for (const m of store.mailbox.takeAll(subject)) {
          store.outbox.put(domain, m.sender, m.id, [subject], m.envelope, now);
          forwarded++;
        }
      }
      return { rerouted, forwarded };
    });
    if (domain !== here && hosted) {
      // After the current request is answered (a device may have published the move right here).
      const err = new PmbError('moved', `This account has moved to ${domain}`);
      setImmediate(() => {
        for (const s of [...this.ctx.delivery.sessions(subject)]) {
          s.send({ type: 'error', code: err.code, message: err.message });
          s.socket.close(err.closeCode, err.code);
        }
      });
    }
    for (const n of notify) {
      this.ctx.delivery.notify(n.account, n.seq, n.received, decodeCbor(n.envelope) as Envelope);
    }
    if (counts.rerouted + counts.forwarded > 0) {
      log.info({ subject, domain, ...counts }, 'account moved: its mail follows');
      this.outbox.kick(domain, true);
    }
  }
}
