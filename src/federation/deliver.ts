import { fromError, PmbError } from '../protocol/errors.js';
import type { Envelope } from '../protocol/frames.js';
import { type DeliverItemWire, S2sDeliver, S2sRecord } from '../protocol/s2s.js';
import type { Context } from '../server/context.js';
import { acceptFetched } from './accept.js';
import type { Link } from './link.js';
import type { Routes } from './mail.js';

type Result = { status: 'held' | 'refused'; code?: string };

/**
 * The receiving side of cross-server delivery: s2s.deliver. Each envelope is checked (limits, targets
 * among its recipients or its sender) and accepted only from a server that is or was home to its sender
 * or to the targets (a server forwarding a moved account's mail), so no server can inject mail in
 * someone else's name from nowhere; recipients verify the signature inside anyway. Identities not known
 * here yet are fetched from the sending server first (s2s.record). Answers once everything is on disk.
 */
export function serveDeliveries(ctx: Context): void {
  ctx.links.handle(S2sDeliver, async (params, link) => {
    const items = params.items as DeliverItemWire[];
    const results: Promise<Result | { failed: PmbError }>[] = [];
    for (const item of items) {
      try {
        const routes = await checkItem(ctx, item, link);
        // Queued in order without waiting: the batch shares group commits instead of one fsync each.
        results.push(
          ctx.mail.store(item.envelope as Envelope, routes).then(
            (): Result => ({ status: 'held' }),
            (err: unknown) => ({ failed: fromError(err) }),
          ),
        );
      } catch (err) {
        const e = fromError(err);
        if (RETRY.has(e.code)) throw e;
        ctx.log.info({ domain: link.domain, code: e.code, err: e.message }, 's2s.deliver: envelope refused');
        results.push(Promise.resolve({ status: 'refused', code: e.code }));
      }
    }
    const done = await Promise.all(results);
    const failed = done.find((r): r is { failed: PmbError } => 'failed' in r);
    // The sender keeps the whole batch and sends it again; what was stored meanwhile is then a duplicate.
    if (failed) throw failed.failed;
    return { results: done as Result[] };
  });
}

/**
 * Out of space, shutting down, or the sender did not answer s2s.record in time: the whole batch is retried
 * later; only a verdict about the envelope itself refuses it for good.
 */
const RETRY = new Set(['storage_full', 'unavailable', 'internal', 'timeout', 'unreachable']);

/** Checks one item and decides where it goes (fetching unknown identities first); throws PmbError. */
async function checkItem(ctx: Context, item: DeliverItemWire, link: Link): Promise<Routes> {
  const envelope = item.envelope as Envelope;
  const { limits } = ctx.config;
  if (envelope.body.length > limits.maxBodyBytes) {
    throw new PmbError('bad_message', `The body exceeds ${limits.maxBodyBytes} bytes`);
  }
  if (envelope.to.length > limits.maxRecipients) throw new PmbError('too_many_recipients');
  const targets = [...new Set(item.to)];
  for (const t of targets) {
    if (t !== envelope.from && !envelope.to.includes(t)) {
      throw new PmbError('bad_message', 'A target is neither a recipient nor the sender');
    }
  }
  for (const fp of [envelope.from, ...targets]) await knowIdentity(ctx, fp, link);
  const ids = ctx.store.identities;
  const senderHomes = ids.homes(envelope.from);
  for (const t of targets) {
    if (!senderHomes.includes(link.domain) && !ids.homes(t).includes(link.domain)) {
      throw new PmbError('forbidden', `${link.domain} is not home to the sender or to ${t}`);
    }
  }
  const routes: Routes = { local: [], remote: new Map() };
  const here = ctx.config.domain;
  for (const t of targets) {
    // The sender thinks t lives here while this server thinks t lives there: one of the two has not seen
    // t's newest location yet. Catch up from the sender before routing, so mail never ping-pongs.
    if (ctx.mail.home(t) === link.domain) await fetchChain(ctx, t, link);
    const home = ctx.mail.home(t);
    if (home === here) {
      if (!ctx.store.accounts.exists(t)) throw new PmbError('unknown_account');
      routes.local.push(t);
    } else if (home !== undefined && home !== link.domain) {
      // It moved on: pass it to its new home.
      routes.remote.set(home, [...(routes.remote.get(home) ?? []), t]);
    } else {
      throw new PmbError('unknown_account', `${t} is not hosted here`);
    }
  }
  return routes;
}

/** Make sure the identity's key and chain are here, fetching them from the peer if not. */
async function knowIdentity(ctx: Context, fp: string, link: Link): Promise<void> {
  const ids = ctx.store.identities;
  if (ids.publicKey(fp) !== undefined && ids.homes(fp).length > 0) return;
  await fetchChain(ctx, fp, link);
  if (ids.publicKey(fp) === undefined) throw new PmbError('unknown_account', `Nobody known as ${fp}`);
}

/** Fetch and accept the records of `fp` the peer has beyond the head held here. */
async function fetchChain(ctx: Context, fp: string, link: Link): Promise<void> {
  const ids = ctx.store.identities;
  const answer = await link.request(S2sRecord, { subject: fp, since: ids.head(fp)?.seq ?? 0 });
  const parsed = S2sRecord.response.safeParse({ type: S2sRecord.okType, id: 0, ...answer });
  if (!parsed.success) throw new PmbError('bad_record', `${link.domain} sent a malformed s2s.record answer`);
  await acceptFetched(ctx, parsed.data.items, link);
}
