import { AccountStore } from './accounts.js';
import { Db, snapshotDatabaseFile } from './db.js';
import { GroupCommit } from './group-commit.js';
import { IdentityStore } from './identities.js';
import { MailboxStore } from './mailbox.js';
import { MetaStore } from './meta.js';
import { migrate } from './migrations.js';
import { OutboxStore } from './outbox.js';

export { encodeSigs, type FeedItem, type StoredRecord, storedToSigned } from './identities.js';
export type { MailboxEntry, StoreResult } from './mailbox.js';
export type { OutboxRow } from './outbox.js';
export { Db, GroupCommit, snapshotDatabaseFile };

/** Everything PMB keeps on disk. Nothing outside src/store writes SQL. */
export interface Store {
  readonly db: Db;
  readonly meta: MetaStore;
  readonly identities: IdentityStore;
  readonly accounts: AccountStore;
  readonly mailbox: MailboxStore;
  readonly outbox: OutboxStore;
  /** Batched, fsynced writes: resolve only after commit. */
  readonly writes: GroupCommit;
  /** A consistent copy of the database in a new file at `path` (for backups, taken while serving). */
  snapshot(path: string): void;
  close(): void;
}

/** Open (and migrate) the store. `url` is a file path or a libsql URL; nothing assumes a local file. */
export function openStore(url: string): Store {
  const db = new Db(url);
  migrate(db);
  const writes = new GroupCommit(db);
  return {
    db,
    meta: new MetaStore(db),
    identities: new IdentityStore(db),
    accounts: new AccountStore(db),
    mailbox: new MailboxStore(db),
    outbox: new OutboxStore(db),
    writes,
    snapshot(path) {
      // Queued writes (lazy delivery cursors) go in first, so the copy is as fresh as the server.
      writes.drain();
      db.snapshotTo(path);
    },
    close() {
      writes.close();
      db.close();
    },
  };
}
