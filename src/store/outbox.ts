import type { Db } from './db.js';

export interface OutboxRow {
  seq: number;
  domain: string;
  sender: string;
  id: string;
  /** Recipients the destination delivers to. */
  targets: string[];
  /** CBOR of the envelope, exactly as stored. */
  envelope: Uint8Array;
  created: number;
}

interface Raw {
  seq: number;
  domain: string;
  sender: string;
  id: string;
  targets: string;
  envelope: Uint8Array;
  created: number;
}

const row = (r: Raw): OutboxRow => ({
  seq: Number(r.seq),
  domain: r.domain,
  sender: r.sender,
  id: r.id,
  targets: JSON.parse(r.targets) as string[],
  envelope: r.envelope,
  created: Number(r.created),
});

/**
 * Envelopes waiting for another server to hold them (docs/federation.md, "Cross-server delivery"). Rows
 * are written in the same transaction as the sender's mailbox copy and deleted only once the destination
 * answered that it holds them. Call inside a transaction.
 */
export class OutboxStore {
  constructor(private readonly db: Db) {}

  put(
    domain: string,
    sender: string,
    id: string,
    targets: readonly string[],
    envelope: Uint8Array,
    now: number,
  ): number {
    return this.db.run(
      'INSERT INTO outbox(domain, sender, id, targets, envelope, created) VALUES (?, ?, ?, ?, ?, ?)',
      [domain, sender, id, JSON.stringify(targets), envelope, now],
    ).lastInsertRowid;
  }

  /** The oldest rows queued for a domain. */
  next(domain: string, limit: number): OutboxRow[] {
    return this.db
      .all<Raw & Record<string, unknown>>(
        'SELECT seq, domain, sender, id, targets, envelope, created FROM outbox WHERE domain = ? ORDER BY seq LIMIT ?',
        [domain, limit],
      )
      .map(row);
  }

  remove(seqs: readonly number[]): void {
    for (const seq of seqs) this.db.run('DELETE FROM outbox WHERE seq = ?', [seq]);
  }

  /** Domains with queued rows. */
  domains(): string[] {
    return this.db.all<{ domain: string }>('SELECT DISTINCT domain FROM outbox').map((r) => r.domain);
  }

  /** Rows queued for anyone else than `domain` that name `target`: the ones to re-route when it moves. */
  namingTarget(target: string, notDomain: string): OutboxRow[] {
    return this.db
      .all<Raw & Record<string, unknown>>(
        `SELECT seq, domain, sender, id, targets, envelope, created FROM outbox
         WHERE domain != ? AND targets LIKE ? ORDER BY seq`,
        [notDomain, `%"${target}"%`],
      )
      .map(row);
  }

  /** Move a row to another destination (or narrow its targets), keeping its place in the order. */
  update(seq: number, domain: string, targets: readonly string[]): void {
    this.db.run('UPDATE outbox SET domain = ?, targets = ? WHERE seq = ?', [
      domain,
      JSON.stringify(targets),
      seq,
    ]);
  }

  count(domain?: string): number {
    return Number(
      (domain === undefined
        ? this.db.get<{ n: number }>('SELECT count(*) AS n FROM outbox')
        : this.db.get<{ n: number }>('SELECT count(*) AS n FROM outbox WHERE domain = ?', [domain])
      )?.n ?? 0,
    );
  }
}
