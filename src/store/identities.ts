import { decodeCbor, encodeCbor } from '../protocol/codec.js';
import type { RecordSignature, SignedRecord } from '../protocol/records.js';
import type { Db } from './db.js';

/** A stored record as it travels: the payload bytes and the signature list. */
export function storedToSigned(r: StoredRecord): SignedRecord {
  return { payload: r.payload, sigs: decodeCbor(r.sigs) as RecordSignature[] };
}

/** The signature list as stored (CBOR). */
export function encodeSigs(sigs: RecordSignature[]): Uint8Array {
  return encodeCbor(sigs);
}

export interface FeedItem {
  pos: number;
  record: SignedRecord;
  /** The subject's public key (binary). */
  publicKey: Uint8Array;
}

export interface StoredRecord {
  subject: string;
  seq: number;
  kind: string;
  hash: Uint8Array;
  payload: Uint8Array;
  /** CBOR of the record's signature list. */
  sigs: Uint8Array;
  expires: number | null;
  /** When this server first stored it (null for records stored before this was kept). */
  received?: number | null;
}

/** Public keys, signed record chains and nickname bindings of every known identity. */
export class IdentityStore {
  /** subject -> current location domain; dropped whenever a record of the subject is stored. */
  readonly #locations = new Map<string, string | null>();

  constructor(private readonly db: Db) {}

  putIdentity(fingerprint: string, publicKey: Uint8Array, now: number): void {
    this.db.run(
      'INSERT INTO identities(fingerprint, public_key, created) VALUES (?, ?, ?) ON CONFLICT DO NOTHING',
      [fingerprint, publicKey, now],
    );
  }

  publicKey(fingerprint: string): Uint8Array | undefined {
    return this.db.get<{ public_key: Uint8Array }>(
      'SELECT public_key FROM identities WHERE fingerprint = ?',
      [fingerprint],
    )?.public_key;
  }

  /** Hash of the record held at (subject, seq), if any. */
  hashAt(subject: string, seq: number): Uint8Array | undefined {
    return this.db.get<{ hash: Uint8Array }>('SELECT hash FROM records WHERE subject = ? AND seq = ?', [
      subject,
      seq,
    ])?.hash;
  }

  head(subject: string): { seq: number; hash: Uint8Array } | undefined {
    return this.db.get<{ seq: number; hash: Uint8Array }>(
      'SELECT seq, hash FROM records WHERE subject = ? ORDER BY seq DESC LIMIT 1',
      [subject],
    );
  }

  /**
   * Stores an accepted record and gives it the next position of the feed, in the same transaction (every
   * caller runs inside store.writes.submit).
   */
  appendRecord(r: StoredRecord): void {
    this.#locations.delete(r.subject);
    this.db.run(
      'INSERT INTO records(subject, seq, kind, hash, payload, sigs, expires, received) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
      [r.subject, r.seq, r.kind, r.hash, r.payload, r.sigs, r.expires, r.received ?? null],
    );
    this.db.run('INSERT INTO feed(subject, seq) VALUES (?, ?)', [r.subject, r.seq]);
  }

  /** Feed entries after `pos`, oldest first: each record with its subject's public key. */
  feedAfter(pos: number, limit: number): FeedItem[] {
    return this.db
      .all<{ pos: number; payload: Uint8Array; sigs: Uint8Array; public_key: Uint8Array }>(
        `SELECT f.pos, r.payload, r.sigs, i.public_key FROM feed f
         JOIN records r ON r.subject = f.subject AND r.seq = f.seq
         JOIN identities i ON i.fingerprint = f.subject
         WHERE f.pos > ? ORDER BY f.pos LIMIT ?`,
        [pos, limit],
      )
      .map((row) => ({
        pos: row.pos,
        record: { payload: row.payload, sigs: decodeCbor(row.sigs) as RecordSignature[] },
        publicKey: row.public_key,
      }));
  }

  /** The last feed position. */
  feedHead(): number {
    return this.db.get<{ pos: number | null }>('SELECT MAX(pos) AS pos FROM feed')?.pos ?? 0;
  }

  /** The last position of `domain`'s feed stored here (0: none yet). */
  peerPosition(domain: string): number {
    return (
      this.db.get<{ pos: number }>('SELECT pos FROM peer_positions WHERE domain = ?', [domain])?.pos ?? 0
    );
  }

  setPeerPosition(domain: string, pos: number): void {
    this.db.run(
      `INSERT INTO peer_positions(domain, pos) VALUES (?, ?)
       ON CONFLICT(domain) DO UPDATE SET pos = excluded.pos`,
      [domain, pos],
    );
  }

  records(subject: string): StoredRecord[] {
    return this.db.all<StoredRecord & Record<string, unknown>>(
      'SELECT subject, seq, kind, hash, payload, sigs, expires, received FROM records WHERE subject = ? ORDER BY seq',
      [subject],
    );
  }

  /**
   * Removes the records of `subject` from `fromSeq` on (a recovery override replaces them) and returns
   * them, oldest first. Their feed rows go too, so a seq taken by the next record is served once, and the
   * bindings they set fall back to the newest binding record left for the same name. Runs inside
   * store.writes.submit, like appendRecord.
   */
  truncate(subject: string, fromSeq: number): StoredRecord[] {
    const removed = this.db.all<StoredRecord & Record<string, unknown>>(
      `SELECT subject, seq, kind, hash, payload, sigs, expires FROM records
       WHERE subject = ? AND seq >= ? ORDER BY seq`,
      [subject, fromSeq],
    );
    if (removed.length === 0) return removed;
    const names = this.db.all<{ nick: string; domain: string }>(
      'SELECT nick, domain FROM bindings WHERE fingerprint = ? AND seq >= ?',
      [subject, fromSeq],
    );
    this.db.run('DELETE FROM records WHERE subject = ? AND seq >= ?', [subject, fromSeq]);
    this.db.run('DELETE FROM feed WHERE subject = ? AND seq >= ?', [subject, fromSeq]);
    this.db.run('DELETE FROM bindings WHERE fingerprint = ? AND seq >= ?', [subject, fromSeq]);
    if (names.length > 0) {
      const left = this.db.all<{ seq: number; payload: Uint8Array; expires: number | null }>(
        "SELECT seq, payload, expires FROM records WHERE subject = ? AND kind = 'binding' ORDER BY seq DESC",
        [subject],
      );
      for (const { nick, domain } of names) {
        const newest = left.find((r) => {
          const body = (decodeCbor(r.payload) as { body?: { nick?: unknown; domain?: unknown } }).body;
          return body?.nick === nick && body?.domain === domain;
        });
        if (newest) this.setBinding(nick, domain, subject, newest.seq, newest.expires);
      }
    }
    this.#locations.delete(subject);
    return removed;
  }

  setBinding(nick: string, domain: string, fingerprint: string, seq: number, expires: number | null): void {
    this.db.run(
      `INSERT INTO bindings(nick, domain, fingerprint, seq, expires) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT(nick, domain) DO UPDATE SET fingerprint = excluded.fingerprint, seq = excluded.seq,
       expires = excluded.expires`,
      [nick, domain, fingerprint, seq, expires],
    );
  }

  /** The server key pinned for a domain. */
  domainKey(domain: string): string | undefined {
    return this.db.get<{ fingerprint: string }>('SELECT fingerprint FROM domain_keys WHERE domain = ?', [
      domain,
    ])?.fingerprint;
  }

  pinDomainKey(domain: string, fingerprint: string, now: number): void {
    this.db.run(
      `INSERT INTO domain_keys(domain, fingerprint, pinned) VALUES (?, ?, ?)
       ON CONFLICT(domain) DO UPDATE SET fingerprint = excluded.fingerprint, pinned = excluded.pinned`,
      [domain, fingerprint, now],
    );
  }

  recordConflict(
    c: { subject: string; seq: number; payload: Uint8Array; sigs: Uint8Array; reason: string },
    now: number,
  ): void {
    this.db.run(
      'INSERT INTO record_conflicts(subject, seq, payload, sigs, reason, seen) VALUES (?, ?, ?, ?, ?, ?)',
      [c.subject, c.seq, c.payload, c.sigs, c.reason, now],
    );
  }

  conflicts(subject: string): { seq: number; reason: string }[] {
    return this.db.all<{ seq: number; reason: string }>(
      'SELECT seq, reason FROM record_conflicts WHERE subject = ? ORDER BY rowid',
      [subject],
    );
  }

  /**
   * The domain of the server responsible for an identity: its newest location record's, else its newest
   * binding's (the registrar hosts an account until it moves). undefined for an identity with neither.
   */
  location(subject: string): string | undefined {
    const hit = this.#locations.get(subject);
    if (hit !== undefined) return hit ?? undefined;
    const row = this.db.get<{ payload: Uint8Array }>(
      "SELECT payload FROM records WHERE subject = ? AND kind = 'location' ORDER BY seq DESC LIMIT 1",
      [subject],
    );
    const domain = row ? bodyDomain(row.payload) : this.bindingDomain(subject);
    if (this.#locations.size > 50_000) this.#locations.clear();
    this.#locations.set(subject, domain ?? null);
    return domain;
  }

  /** Every domain an identity's chain has named as its home (bindings and locations), oldest first. */
  homes(subject: string): string[] {
    const rows = this.db.all<{ payload: Uint8Array }>(
      "SELECT payload FROM records WHERE subject = ? AND kind IN ('binding', 'location') ORDER BY seq",
      [subject],
    );
    const out: string[] = [];
    for (const r of rows) {
      const d = bodyDomain(r.payload);
      if (d !== undefined && !out.includes(d)) out.push(d);
    }
    return out;
  }

  /** Forget cached locations (after records were removed, e.g. by a recovery override). */
  forgetLocation(subject?: string): void {
    if (subject === undefined) this.#locations.clear();
    else this.#locations.delete(subject);
  }

  /** The domain of the newest binding held for `fingerprint`. */
  bindingDomain(fingerprint: string): string | undefined {
    return this.db.get<{ domain: string }>(
      'SELECT domain FROM bindings WHERE fingerprint = ? ORDER BY seq DESC LIMIT 1',
      [fingerprint],
    )?.domain;
  }

  /** Owner of nick@domain, unless the binding has expired. */
  bindingOwner(nick: string, domain: string, now: number): string | undefined {
    return this.db.get<{ fingerprint: string }>(
      'SELECT fingerprint FROM bindings WHERE nick = ? AND domain = ? AND (expires IS NULL OR expires > ?)',
      [nick, domain, now],
    )?.fingerprint;
  }
}

/** body.domain of a stored (already verified) binding or location payload. */
function bodyDomain(payload: Uint8Array): string | undefined {
  const body = (decodeCbor(payload) as { body?: { domain?: unknown } }).body;
  return typeof body?.domain === 'string' ? body.domain : undefined;
}
