import type { Db } from './db.js';

/** Schema versions, applied in order inside one transaction each; PRAGMA user_version records progress. */
export const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);

  -- Every identity this server knows: its public key (fingerprint = primary id).
  CREATE TABLE identities (
    fingerprint TEXT PRIMARY KEY,
    public_key BLOB NOT NULL,
    created INTEGER NOT NULL
  );
  -- The hash chain of signed records of each identity.
  CREATE TABLE records (
    subject TEXT NOT NULL REFERENCES identities(fingerprint),
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    hash BLOB NOT NULL,
    payload BLOB NOT NULL,
    sigs BLOB NOT NULL,
    expires INTEGER,
    PRIMARY KEY (subject, seq)
  );
  -- nick@domain -> identity, from the newest valid binding record.
  CREATE TABLE bindings (
    nick TEXT NOT NULL,
    domain TEXT NOT NULL,
    fingerprint TEXT NOT NULL REFERENCES identities(fingerprint),
    seq INTEGER NOT NULL,
    expires INTEGER,
    PRIMARY KEY (nick, domain)
  );
  CREATE INDEX bindings_by_fingerprint ON bindings(fingerprint);

  -- Accounts this server is responsible for.
  CREATE TABLE accounts (
    fingerprint TEXT PRIMARY KEY REFERENCES identities(fingerprint),
    created INTEGER NOT NULL
  );
  CREATE TABLE devices (
    account TEXT NOT NULL REFERENCES accounts(fingerprint),
    device TEXT NOT NULL,
    cursor INTEGER NOT NULL,
    created INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    PRIMARY KEY (account, device)
  );
  CREATE TABLE invites (
    code TEXT PRIMARY KEY,
    created INTEGER NOT NULL,
    expires INTEGER NOT NULL,
    used_by TEXT,
    used_at INTEGER
  );

  -- Envelopes, stored once; (sender, id) makes delivery idempotent.
  CREATE TABLE messages (
    rowid INTEGER PRIMARY KEY,
    sender TEXT NOT NULL,
    id TEXT NOT NULL,
    received INTEGER NOT NULL,
    envelope BLOB NOT NULL,
    UNIQUE (sender, id)
  );
  -- One row per (account, message): the account's mailbox. seq is global and only grows,
  -- so a device cursor is simply the last seq it acknowledged.
  CREATE TABLE mailbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    account TEXT NOT NULL REFERENCES accounts(fingerprint),
    message INTEGER NOT NULL REFERENCES messages(rowid)
  );
  CREATE INDEX mailbox_by_account ON mailbox(account, seq);
  CREATE INDEX mailbox_by_message ON mailbox(message);
  CREATE INDEX messages_by_received ON messages(received);
  `,
  `
  -- domain -> the server key pinned for it (first seen through discovery or gossip; moved only by a
  -- server record signed by the old key).
  CREATE TABLE domain_keys (
    domain TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL REFERENCES identities(fingerprint),
    pinned INTEGER NOT NULL
  );
  -- Records that contradict a held chain: kept as evidence (a stolen key or a misbehaving server).
  CREATE TABLE record_conflicts (
    rowid INTEGER PRIMARY KEY,
    subject TEXT NOT NULL,
    seq INTEGER NOT NULL,
    payload BLOB NOT NULL,
    sigs BLOB NOT NULL,
    reason TEXT NOT NULL,
    seen INTEGER NOT NULL
  );
  CREATE INDEX record_conflicts_by_subject ON record_conflicts(subject);
  `,
  `
  -- The feed (docs/federation.md, "Directory replication"): one row per record this server accepted, in
  -- the order it accepted them; peers pull it by position.
  CREATE TABLE feed (
    pos INTEGER PRIMARY KEY AUTOINCREMENT,
    subject TEXT NOT NULL,
    seq INTEGER NOT NULL
  );
  -- Per peer domain, the last position of its feed this server has stored.
  CREATE TABLE peer_positions (
    domain TEXT PRIMARY KEY,
    pos INTEGER NOT NULL
  );
  `,
  `
  -- The outbox (docs/federation.md, "Cross-server delivery"): envelopes acknowledged here that another
  -- server must hold before they leave. One row per (envelope, destination server); seq orders each
  -- destination's queue. targets: the recipients (JSON array of fingerprints) the destination delivers to.
  CREATE TABLE outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    domain TEXT NOT NULL,
    sender TEXT NOT NULL,
    id TEXT NOT NULL,
    targets TEXT NOT NULL,
    envelope BLOB NOT NULL,
    created INTEGER NOT NULL
  );
  CREATE INDEX outbox_by_domain ON outbox(domain, seq);
  `,
  `
  -- When this server first stored each record (its own clock): a record's age for the recovery window is
  -- judged by the later of this and its signed ts, so a backdated record cannot escape an override.
  ALTER TABLE records ADD COLUMN received INTEGER;
  `,
];

export function migrate(db: Db): number {
  const current = Number(db.get<{ user_version: number }>('PRAGMA user_version')?.user_version ?? 0);
  for (let v = current; v < MIGRATIONS.length; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v] as string);
      db.exec(`PRAGMA user_version = ${v + 1}`);
    });
  }
  return MIGRATIONS.length;
}
