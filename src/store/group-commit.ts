import { PmbError } from '../protocol/errors.js';
import type { Db } from './db.js';

interface Pending<T> {
  work: () => T;
  resolve: (value: T) => void;
  reject: (err: unknown) => void;
}

/**
 * Group commit: writes submitted within one tick run in a single transaction (each in its own savepoint,
 * so one failing write fails alone), and every promise resolves only after COMMIT returned, i.e. after
 * the WAL was fsynced (synchronous=FULL). One fsync then acknowledges a whole batch.
 */
export class GroupCommit {
  readonly #db: Db;
  readonly #maxBatch: number;
  #queue: Pending<unknown>[] = [];
  #scheduled = false;
  #lazyTimer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;
  /** Number of commits done; exposed for metrics and tests. */
  commits = 0;

  constructor(db: Db, opts: { maxBatch?: number } = {}) {
    this.#db = db;
    this.#maxBatch = opts.maxBatch ?? 1000;
  }

  submit<T>(work: () => T): Promise<T> {
    if (this.#closed) return Promise.reject(new PmbError('unavailable'));
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({ work, resolve, reject } as Pending<unknown>);
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => this.#flush());
      }
    });
  }

  /**
   * A write that may wait: it rides along with the next batch, or is committed within `maxDelayMs`. For
   * writes whose answer may wait that long, such as a delivery cursor (the ack is answered when the promise
   * resolves, i.e. after COMMIT): under load they then cost no fsync of their own.
   */
  defer<T>(work: () => T, maxDelayMs = 100): Promise<T> {
    if (this.#closed) return Promise.reject(new PmbError('unavailable'));
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({ work, resolve, reject } as Pending<unknown>);
      if (!this.#scheduled && !this.#lazyTimer) {
        this.#lazyTimer = setTimeout(() => {
          this.#lazyTimer = undefined;
          if (!this.#scheduled) this.#flush();
        }, maxDelayMs);
        this.#lazyTimer.unref?.();
      }
    });
  }

  /** Commit everything queued now (used on close). */
  drain(): void {
    while (this.#queue.length > 0) this.#flushBatch();
  }

  close(): void {
    if (this.#lazyTimer) clearTimeout(this.#lazyTimer);
    this.#lazyTimer = undefined;
    this.drain();
    this.#closed = true;
  }

  #flush(): void {
    this.#scheduled = false;
    this.#flushBatch();
    if (this.#queue.length > 0 && !this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => this.#flush());
    }
  }

  #flushBatch(): void {
    const batch = this.#queue.splice(0, this.#maxBatch);
    if (batch.length === 0) return;
    const outcomes: { ok: boolean; value: unknown }[] = [];
    try {
      this.#db.transaction(() => {
        for (const p of batch) {
          this.#db.run('SAVEPOINT w');
          try {
            outcomes.push({ ok: true, value: p.work() });
            this.#db.run('RELEASE w');
          } catch (err) {
            this.#db.run('ROLLBACK TO w');
            this.#db.run('RELEASE w');
            outcomes.push({ ok: false, value: err });
          }
        }
      });
      this.commits++;
    } catch (err) {
      const failure = storageError(err);
      for (const p of batch) p.reject(failure);
      return;
    }
    batch.forEach((p, i) => {
      const o = outcomes[i] as { ok: boolean; value: unknown };
      if (o.ok) p.resolve(o.value);
      else p.reject(storageError(o.value));
    });
  }
}

function storageError(err: unknown): unknown {
  if (err instanceof PmbError) return err;
  const code = (err as { code?: unknown })?.code;
  const message = err instanceof Error ? err.message : String(err);
  if (code === 'SQLITE_FULL' || /disk is full|database or disk is full/i.test(message)) {
    return new PmbError('storage_full', undefined, { cause: err });
  }
  return err;
}
