import { decodeCbor } from '../protocol/codec.js';
import type { DeliverFrame, Envelope } from '../protocol/frames.js';
import type { Store } from '../store/index.js';
import type { Logger } from './logger.js';
import type { Session } from './session.js';

/**
 * Pushes mailbox entries to the online devices of each account. Each device session has a window of
 * unacknowledged pushes; a live session (caught up with the stored backlog) gets new mail straight from
 * the send path, a lagging one reads its backlog from the store as acks free its window.
 */
export class Delivery {
  readonly #online = new Map<string, Set<Session>>();

  constructor(
    private readonly store: Store,
    private readonly window: number,
    private readonly log: Logger,
  ) {}

  attach(session: Session, cursor: number): void {
    const account = session.account as string;
    let set = this.#online.get(account);
    if (!set) {
      set = new Set();
      this.#online.set(account, set);
    }
    set.add(session);
    session.pushed = cursor;
    session.inflight = [];
    session.live = false;
    this.pump(session);
  }

  detach(session: Session): void {
    if (!session.account) return;
    const set = this.#online.get(session.account);
    set?.delete(session);
    if (set?.size === 0) this.#online.delete(session.account);
  }

  sessions(account: string): ReadonlySet<Session> {
    return this.#online.get(account) ?? new Set();
  }

  onlineDevices(): number {
    let n = 0;
    for (const s of this.#online.values()) n += s.size;
    return n;
  }

  /**
   * A new entry was committed for an account. `origin` is the session that sent it: it has the message
   * already, so when it is caught up its copy is marked received instead of being pushed back.
   */
  notify(account: string, seq: number, received: number, envelope: Envelope, origin?: Session): void {
    const set = this.#online.get(account);
    if (!set) return;
    for (const session of set) {
      if (session === origin && session.live && session.inflight.length === 0 && seq > session.pushed) {
        session.pushed = seq;
        void this.#saveCursor(session, seq); // a failure is logged there
      } else if (session.live && session.inflight.length < this.window && seq > session.pushed) {
        this.#push(session, { type: 'deliver', seq, received, envelope });
      } else {
        session.live = false;
        this.pump(session);
      }
    }
  }

  /**
   * The device acknowledged everything up to seq. The window is freed at once (delivery goes on); the
   * promise resolves once the cursor is on disk, which is when the ack may be answered.
   */
  acked(session: Session, seq: number): Promise<void> {
    let i = 0;
    while (i < session.inflight.length && (session.inflight[i] as number) <= seq) i++;
    if (i > 0) session.inflight.splice(0, i);
    const saved = this.#saveCursor(session, seq);
    if (!session.live) this.pump(session);
    return saved;
  }

  /**
   * Cursors are written lazily, with the next batch of messages (or within the group commit's delay): they
   * cost no fsync of their own under load. The promise resolves after the COMMIT that wrote `seq` (or a
   * higher value), so an answered ack survives a crash. What every device has received leaves the mailbox.
   */
  #saveCursor(session: Session, seq: number): Promise<void> {
    session.cursorToSave = Math.max(session.cursorToSave, seq);
    // A queued write has not run yet: it writes the latest value, so its commit covers this seq too.
    if (session.cursorSave) return session.cursorSave;
    const { store } = this;
    const account = session.account as string;
    const device = session.device as string;
    const saved: Promise<void> = store.writes.defer(() => {
      if (session.cursorSave === saved) session.cursorSave = undefined;
      store.accounts.advanceCursor(account, device, session.cursorToSave);
      const all = store.accounts.minCursor(account);
      if (all !== undefined && all > 0) store.mailbox.prune(account, all);
    });
    session.cursorSave = saved;
    saved.catch((err: unknown) => {
      if (session.cursorSave === saved) session.cursorSave = undefined;
      this.log.warn({ err, account }, 'saving a delivery cursor failed');
    });
    return saved;
  }

  /** Fill the session's window from the stored backlog; go live when it is drained. */
  pump(session: Session): void {
    if (session.closed || !session.account) return;
    const room = this.window - session.inflight.length;
    if (room <= 0) return;
    const rows = this.store.mailbox.after(session.account, session.pushed, room);
    for (const row of rows) {
      this.#push(session, {
        type: 'deliver',
        seq: row.seq,
        received: row.received,
        envelope: decodeCbor(row.envelope) as Envelope,
      });
    }
    if (rows.length < room) {
      session.live = true;
      if (!session.syncedSent) {
        session.syncedSent = true;
        session.send({ type: 'synced', seq: session.pushed });
      }
    }
  }

  #push(session: Session, frame: DeliverFrame): void {
    session.pushed = frame.seq;
    session.inflight.push(frame.seq);
    session.send(frame);
  }
}
