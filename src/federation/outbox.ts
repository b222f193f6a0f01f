import { decodeCbor } from '../protocol/codec.js';
import { fromError } from '../protocol/errors.js';
import type { Envelope } from '../protocol/frames.js';
import { S2S_MAX_ENVELOPES, S2sDeliver } from '../protocol/s2s.js';
import type { Context } from '../server/context.js';
import type { OutboxRow } from '../store/index.js';

export interface OutboxOptions {
  /** Retry backoff per destination: first delay, doubling up to maxMs, with jitter (default 1 s to 5 min). */
  backoff?: { initialMs: number; maxMs: number };
}

interface Queue {
  running: boolean;
  /** Asked to run again while running. */
  again: boolean;
  timer?: NodeJS.Timeout;
  delay: number;
}

/**
 * Empties the outbox (docs/federation.md, "Cross-server delivery"): one worker per destination domain
 * sends its rows in order, in batches, over the link to that domain; a row leaves the outbox only when
 * the destination answered that it holds it (or refused it for good). A destination that cannot be
 * reached is retried with backoff, and at once when a link to it opens.
 */
export class OutboxWorker {
  readonly #queues = new Map<string, Queue>();
  readonly #backoff: { initialMs: number; maxMs: number };
  #closed = false;
  /** Rows refused by their destination (logged, dropped). */
  refused = 0;

  constructor(
    private readonly ctx: Context,
    opts: OutboxOptions = {},
  ) {
    this.#backoff = opts.backoff ?? { initialMs: 1000, maxMs: 5 * 60_000 };
  }

  /** Start on every destination with queued rows, and whenever a link opens. */
  start(): void {
    this.ctx.links.onLink((link) => this.kick(link.domain, true));
    for (const d of this.ctx.store.outbox.domains()) this.kick(d);
  }

  /** Rows were queued for `domain` (or it became reachable: `now` skips a waiting backoff). */
  kick(domain: string, now = false): void {
    if (this.#closed || domain === this.ctx.config.domain) return;
    let q = this.#queues.get(domain);
    if (!q) {
      q = { running: false, again: false, delay: this.#backoff.initialMs };
      this.#queues.set(domain, q);
    }
    if (q.running) {
      q.again = true;
      return;
    }
    if (q.timer) {
      if (!now) return;
      clearTimeout(q.timer);
      q.timer = undefined;
    }
    void this.#run(domain, q);
  }

  /** How many rows are waiting, for one destination or all. */
  pending(domain?: string): number {
    return this.ctx.store.outbox.count(domain);
  }

  close(): void {
    this.#closed = true;
    for (const q of this.#queues.values()) if (q.timer) clearTimeout(q.timer);
    this.#queues.clear();
  }

  async #run(domain: string, q: Queue): Promise<void> {
    q.running = true;
    q.again = false;
    const { store, log } = this.ctx;
    try {
      for (;;) {
        if (this.#closed) return;
        const rows = fitFrame(
          store.outbox.next(domain, S2S_MAX_ENVELOPES),
          this.ctx.config.limits.maxFrameBytes,
        );
        if (rows.length === 0) {
          if (!q.again) break;
          q.again = false;
          continue;
        }
        const link = await this.ctx.links.connect(domain);
        const answer = await link.request(S2sDeliver, {
          items: rows.map((r) => ({ envelope: decodeCbor(r.envelope) as Envelope, to: r.targets })),
        });
        const parsed = S2sDeliver.response.safeParse({ type: S2sDeliver.okType, id: 0, ...answer });
        if (!parsed.success || parsed.data.results.length !== rows.length) {
          throw new Error(`${domain} answered s2s.deliver with a malformed result`);
        }
        const done: number[] = [];
        parsed.data.results.forEach((res, i) => {
          const row = rows[i] as OutboxRow;
          done.push(row.seq);
          if (res.status === 'refused') {
            this.refused++;
            log.warn({ domain, sender: row.sender, id: row.id, code: res.code }, 'outbox: envelope refused');
          }
        });
        await store.writes.submit(() => store.outbox.remove(done));
        q.delay = this.#backoff.initialMs;
      }
    } catch (err) {
      if (this.#closed) return;
      const e = fromError(err);
      log.info({ domain, code: e.code, err: e.message, retryMs: q.delay }, 'outbox: delivery deferred');
      const wait = Math.round(q.delay * (0.75 + Math.random() * 0.5));
      q.delay = Math.min(this.#backoff.maxMs, q.delay * 2);
      q.timer = setTimeout(() => {
        q.timer = undefined;
        this.kick(domain);
      }, wait);
      q.timer.unref?.();
    } finally {
      q.running = false;
    }
    if (q.again && !q.timer && !this.#closed) this.kick(domain);
  }
}

/**
 * The first rows whose envelopes fit one s2s.deliver frame of the peer (its maxFrameBytes is ours by
 * default; half of it leaves room for framing, targets and the request signature). At least one row: a
 * single envelope is at most maxBodyBytes, well under a frame.
 */
function fitFrame(rows: OutboxRow[], maxFrameBytes: number): OutboxRow[] {
  const budget = maxFrameBytes / 2;
  let bytes = 0;
  let n = 0;
  while (n < rows.length) {
    const row = rows[n] as OutboxRow;
    bytes += row.envelope.length + row.targets.length * 48 + 64;
    if (n > 0 && bytes > budget) break;
    n++;
  }
  return rows.slice(0, n);
}
