import type { Db } from './db.js';

export interface MailboxEntry {
  seq: number;
  received: number;
  /** CBOR of the envelope, exactly as stored. */
  envelope: Uint8Array;
}

export interface StoreResult {
  duplicate: boolean;
  received: number;
  /** New mailbox positions, one per account that got the message (empty for a duplicate). */
  entries: { account: string; seq: number }[];
}

/** Stored envelopes and the per-account mailboxes that point at them. Call inside a transaction. */
export class MailboxStore {
  constructor(private readonly db: Db) {}

  /** Store an envelope for the given local accounts; a (sender, id) seen before is a duplicate. */
  put(
    sender: string,
    id: string,
    envelope: Uint8Array,
    accounts: readonly string[],
    now: number,
  ): StoreResult {
    const ins = this.db.run(
      'INSERT INTO messages(sender, id, received, envelope) VALUES (?, ?, ?, ?) ON CONFLICT(sender, id) DO NOTHING',
      // With no mailbox here to point at it (all recipients elsewhere), only the (sender, id) key is kept.
      [sender, id, now, accounts.length > 0 ? envelope : new Uint8Array(0)],
    );
    if (ins.changes === 0) {
      const prev = this.db.get<{ received: number }>(
        'SELECT received FROM messages WHERE sender = ? AND id = ?',
        [sender, id],
      );
      return { duplicate: true, received: Number(prev?.received ?? now), entries: [] };
    }
    const entries = accounts.map((account) => ({
      account,
      seq: this.db.run('INSERT INTO mailbox(account, message) VALUES (?, ?)', [account, ins.lastInsertRowid])
        .lastInsertRowid,
    }));
    return { duplicate: false, received: now, entries };
  }

  /** true when (sender, id) is held here (stored once, even if delivered since). */
  has(sender: string, id: string): boolean {
    return this.db.get('SELECT 1 AS x FROM messages WHERE sender = ? AND id = ?', [sender, id]) !== undefined;
  }

  /** Entries of the account after a position, oldest first. */
  after(account: string, seq: number, limit: number): MailboxEntry[] {
    return this.db.all<MailboxEntry & Record<string, unknown>>(
      `SELECT mailbox.seq AS seq, messages.received AS received, messages.envelope AS envelope
       FROM mailbox JOIN messages ON messages.rowid = mailbox.message
       WHERE mailbox.account = ? AND mailbox.seq > ? ORDER BY mailbox.seq LIMIT ?`,
      [account, seq, limit],
    );
  }

  head(account: string): number {
    return Number(
      this.db.get<{ s: number | null }>('SELECT max(seq) AS s FROM mailbox WHERE account = ?', [account])
        ?.s ?? 0,
    );
  }

  /**
   * Drop entries every device has received. The envelope is then emptied but its (sender, id) is kept, so a
   * late retry of the same id is still recognised as a duplicate; `purge` removes those keys later.
   */
  prune(account: string, upTo: number): number {
    const gone = this.db.all<{ message: number }>(
      'DELETE FROM mailbox WHERE account = ? AND seq <= ? RETURNING message',
      [account, upTo],
    );
    for (const { message } of gone) {
      this.db.run(
        "UPDATE messages SET envelope = x'' WHERE rowid = ? AND NOT EXISTS (SELECT 1 FROM mailbox WHERE message = ?)",
        [message, message],
      );
    }
    return gone.length;
  }

  /**
   * Remove every entry of the account and return the envelopes, oldest first (the account moved: they are
   * forwarded to its new server). The (sender, id) keys stay, as after prune.
   */
  takeAll(account: string): { sender: string; id: string; envelope: Uint8Array }[] {
    const rows = this.db.all<{ message: number; sender: string; id: string; envelope: Uint8Array }>(
      `SELECT mailbox.message AS message, messages.sender AS sender, messages.id AS id,
       messages.envelope AS envelope
       FROM mailbox JOIN messages ON messages.rowid = mailbox.message
       WHERE mailbox.account = ? ORDER BY mailbox.seq`,
      [account],
    );
    this.prune(account, Number.MAX_SAFE_INTEGER);
    return rows.map(({ sender, id, envelope }) => ({ sender, id, envelope }));
  }

  /** Forget delivered messages' ids received before `before` (the duplicate-detection horizon). */
  purge(before: number): number {
    return this.db.run(
      'DELETE FROM messages WHERE received < ? AND NOT EXISTS (SELECT 1 FROM mailbox WHERE mailbox.message = messages.rowid)',
      [before],
    ).changes;
  }
}
