import { decodeRecord } from '../crypto/index.js';
import { fromError } from '../protocol/errors.js';
import type { SignedRecord } from '../protocol/records.js';
import { type FeedItemWire, S2S_MAX_ITEMS, S2sRecord, S2sRecords, S2sSync } from '../protocol/s2s.js';
import type { Context } from '../server/context.js';
import { storedToSigned } from '../store/index.js';
import { acceptFetched, acceptRecord } from './accept.js';
import type { Link } from './link.js';

/** Refusals that an honest peer cannot cause (it verifies before passing on), and how many close a link. */
const FORGED = new Set(['bad_signature', 'bad_record', 'bad_key', 'expired']);
export const MAX_FORGED_PER_LINK = 20;

/** Bytes of records per page or push: well under the 256 KiB frame limit of the receiving side. */
const PAGE_BYTES = 160 * 1024;

function itemBytes(item: FeedItemWire): number {
  return item.record.payload.length + item.publicKey.length + item.record.sigs.length * 400 + 64;
}

/**
 * Directory replication (docs/federation.md): serves s2s.sync from the feed, accepts s2s.records pushes,
 * pulls from every newly opened link from the last position stored for that peer, and pushes every record
 * accepted here to every open link but the one it came from. Refused records are never passed on; a
 * record already held is 'known' and not passed on either, so flooding stops.
 */
export class Gossip {
  readonly #queues = new Map<Link, { items: FeedItemWire[]; running: boolean }>();
  /** Records refused from each peer domain (forged, stale, forks, gaps). */
  readonly refused = new Map<string, number>();
  readonly #pulls = new Map<Link, Promise<void>>();
  /** Records refused as forged or invalid, per link. */
  readonly #forged = new WeakMap<Link, number>();

  constructor(private readonly ctx: Context) {
    const { links, store } = ctx;
    links.handle(S2sSync, async (params) => {
      const since = params.since as number;
      const limit = params.limit as number;
      const rows = store.identities.feedAfter(since, limit + 1);
      const items: FeedItemWire[] = [];
      let next = since;
      let bytes = 0;
      for (const row of rows.slice(0, limit)) {
        const item = { record: row.record, publicKey: row.publicKey };
        bytes += itemBytes(item);
        if (items.length > 0 && bytes > PAGE_BYTES) break;
        items.push(item);
        next = row.pos;
      }
      return { items, next, more: rows.length > items.length };
    });
    links.handle(S2sRecord, async (params) => ({
      items: chainItems(ctx, params.subject as string, params.since as number),
    }));
    links.handle(S2sRecords, async (params, link) => ({
      accepted: await this.#acceptAll(params.items as FeedItemWire[], link),
    }));
    links.onLink((link) => {
      const pull = this.#pull(link).catch((err: unknown) =>
        ctx.log.info({ domain: link.domain, err: fromError(err).message }, 'gossip pull stopped'),
      );
      this.#pulls.set(link, pull);
      void pull.then(() => {
        if (this.#pulls.get(link) === pull) this.#pulls.delete(link);
      });
    });
  }

  /**
   * Catch up with `domain` now: waits for the pull running on its link, or pulls again from the position
   * stored for it (a record pushed a moment ago may still be on its way). At once if there is no link.
   */
  async refresh(domain: string): Promise<void> {
    const link = this.ctx.links.get(domain);
    if (!link) return;
    const running = this.#pulls.get(link);
    if (running) {
      await running;
      if (this.#pulls.get(link) !== running) return;
    }
    const pull = this.#pull(link).catch((err: unknown) =>
      this.ctx.log.info({ domain, err: fromError(err).message }, 'gossip pull stopped'),
    );
    this.#pulls.set(link, pull);
    await pull;
    if (this.#pulls.get(link) === pull) this.#pulls.delete(link);
  }

  /** A record accepted here: push it to every open link except `from`. */
  announce(record: SignedRecord, publicKey: Uint8Array, from?: Link): void {
    for (const domain of this.ctx.links.domains) {
      const link = this.ctx.links.get(domain);
      if (!link?.open || link === from) continue;
      let q = this.#queues.get(link);
      if (!q) {
        q = { items: [], running: false };
        this.#queues.set(link, q);
        link.onClose(() => this.#queues.delete(link));
      }
      q.items.push({ record, publicKey });
      if (!q.running) void this.#drain(link, q);
    }
  }

  /** Pushes in order, one batch at a time; a peer that misses some catches up by s2s.sync on relink. */
  async #drain(link: Link, q: { items: FeedItemWire[]; running: boolean }): Promise<void> {
    q.running = true;
    try {
      while (q.items.length > 0 && link.open) {
        let n = 0;
        let bytes = 0;
        while (n < q.items.length && n < S2S_MAX_ITEMS) {
          bytes += itemBytes(q.items[n] as FeedItemWire);
          if (n > 0 && bytes > PAGE_BYTES) break;
          n++;
        }
        const batch = q.items.splice(0, n);
        try {
          await link.request(S2sRecords, { items: batch });
        } catch (err) {
          this.ctx.log.info({ domain: link.domain, err: fromError(err).message }, 'gossip push failed');
        }
      }
    } finally {
      q.running = false;
    }
  }

  /** Verify and store each item in order; pass on what is new. Returns how many were new. */
  async #acceptAll(items: FeedItemWire[], from: Link): Promise<number> {
    let accepted = 0;
    for (const item of items) {
      try {
        const r = await acceptRecord(this.ctx, item.record, item.publicKey, from);
        if (r.outcome === 'accepted') accepted++;
      } catch (err) {
        let e = fromError(err);
        if (e.code === 'record_gap') {
          // Records before this one never reached us (a link was down): fetch the chain, then retry.
          try {
            await this.#fill(item, from);
            accepted++;
            continue;
          } catch (again) {
            e = fromError(again);
          }
        }
        this.refused.set(from.domain, (this.refused.get(from.domain) ?? 0) + 1);
        this.ctx.log.info({ domain: from.domain, code: e.code, err: e.message }, 'gossip: record refused');
        if (FORGED.has(e.code)) {
          const n = (this.#forged.get(from) ?? 0) + 1;
          this.#forged.set(from, n);
          if (n >= MAX_FORGED_PER_LINK && from.open) {
            // An honest server never passes on what does not verify: drop the link (it may come back later).
            this.ctx.log.warn(
              { domain: from.domain, refused: n },
              'gossip: peer sends forged records; link closed',
            );
            from.close(1008, 'too many forged records');
            return accepted;
          }
        }
      }
    }
    return accepted;
  }

  /** Fetch the subject's chain from the peer that sent `item`, then accept `item` itself. */
  async #fill(item: FeedItemWire, from: Link): Promise<void> {
    const { store } = this.ctx;
    const subject = decodeRecord(item.record).subject;
    const since = store.identities.head(subject)?.seq ?? 0;
    const answer = await from.request(S2sRecord, { subject, since });
    const parsed = S2sRecord.response.safeParse({ type: S2sRecord.okType, id: 0, ...answer });
    if (!parsed.success) throw new Error(`${from.domain} answered s2s.record with a malformed page`);
    await acceptFetched(this.ctx, parsed.data.items, from);
    const r = await acceptRecord(this.ctx, item.record, item.publicKey, from);
    if (r.outcome !== 'accepted') throw new Error('the record was already held');
  }

  /** Pull the peer's feed from the last position stored for it until it has no more. */
  async #pull(link: Link): Promise<void> {
    const { store } = this.ctx;
    let since = store.identities.peerPosition(link.domain);
    for (;;) {
      if (!link.open) return;
      const page = await link.request(S2sSync, { since, limit: S2S_MAX_ITEMS });
      const parsed = S2sSync.response.safeParse({ type: S2sSync.okType, id: 0, ...page });
      if (!parsed.success) throw new Error(`${link.domain} answered s2s.sync with a malformed page`);
      await this.#acceptAll(parsed.data.items, link);
      const next = parsed.data.next;
      if (next > since) {
        await store.writes.submit(() => store.identities.setPeerPosition(link.domain, next));
        since = next;
      }
      if (!parsed.data.more || parsed.data.items.length === 0) return;
    }
  }
}

/**
 * What s2s.record answers: the server records of every domain the identity's chain names (so the
 * receiver can check the registrars' cosignatures), then the identity's records above `since`.
 */
export function chainItems(ctx: Context, subject: string, since: number): FeedItemWire[] {
  const ids = ctx.store.identities;
  const key = ids.publicKey(subject);
  if (key === undefined) return [];
  const items: FeedItemWire[] = [];
  for (const domain of ids.homes(subject)) {
    const fp = ids.domainKey(domain);
    const serverKey = fp === undefined ? undefined : ids.publicKey(fp);
    if (fp === undefined || serverKey === undefined) continue;
    for (const r of ids.records(fp)) items.push({ record: storedToSigned(r), publicKey: serverKey });
  }
  for (const r of ids.records(subject)) {
    if (r.seq > since) items.push({ record: storedToSigned(r), publicKey: key });
  }
  return items.slice(0, S2S_MAX_ITEMS);
}
