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

export interface StoredRecord {
  subject: string;
  seq: number;
  kind: string;
  hash: Uint8Array;
  payload: Uint8Array;
  /** CBOR of the record's signature list. */
  sigs: Uint8Array;
  expires: number | null;
}

/** Public keys, signed record chains and nickname bindings of every known identity. */
export class IdentityStore {
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

  head(subject: string): { seq: number; hash: Uint8Array } | undefined {
    return this.db.get<{ seq: number; hash: Uint8Array }>(
      'SELECT seq, hash FROM records WHERE subject = ? ORDER BY seq DESC LIMIT 1',
      [subject],
    );
  }

  appendRecord(r: StoredRecord): void {
    this.db.run(
      'INSERT INTO records(subject, seq, kind, hash, payload, sigs, expires) VALUES (?, ?, ?, ?, ?, ?, ?)',
      [r.subject, r.seq, r.kind, r.hash, r.payload, r.sigs, r.expires],
    );
  }

  records(subject: string): StoredRecord[] {
    return this.db.all<StoredRecord & Record<string, unknown>>(
      'SELECT subject, seq, kind, hash, payload, sigs, expires FROM records WHERE subject = ? ORDER BY seq',
      [subject],
    );
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

  /** Owner of nick@domain, unless the binding has expired. */
  bindingOwner(nick: string, domain: string, now: number): string | undefined {
    return this.db.get<{ fingerprint: string }>(
      'SELECT fingerprint FROM bindings WHERE nick = ? AND domain = ? AND (expires IS NULL OR expires > ?)',
      [nick, domain, now],
    )?.fingerprint;
  }
}
