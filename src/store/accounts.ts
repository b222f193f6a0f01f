import type { Db } from './db.js';

/** Accounts this server is responsible for, their devices (each with its mailbox cursor), and invites. */
export class AccountStore {
  /** Accounts seen to exist; accounts are never deleted, so a hit needs no query. */
  readonly #known = new Set<string>();

  constructor(private readonly db: Db) {}

  create(fingerprint: string, now: number): void {
    this.db.run('INSERT INTO accounts(fingerprint, created) VALUES (?, ?) ON CONFLICT DO NOTHING', [
      fingerprint,
      now,
    ]);
  }

  exists(fingerprint: string): boolean {
    if (this.#known.has(fingerprint)) return true;
    const found =
      this.db.get('SELECT 1 AS x FROM accounts WHERE fingerprint = ?', [fingerprint]) !== undefined;
    if (found) this.#known.add(fingerprint);
    return found;
  }

  count(): number {
    return Number(this.db.get<{ n: number }>('SELECT count(*) AS n FROM accounts')?.n ?? 0);
  }

  /**
   * The device's cursor, creating the device on first login. A new device of an account that already has
   * devices starts at the mailbox head (like Signal, no history); the first device gets everything stored.
   */
  openDevice(account: string, device: string, head: number, now: number): number {
    const row = this.db.get<{ cursor: number }>(
      'SELECT cursor FROM devices WHERE account = ? AND device = ?',
      [account, device],
    );
    if (row) {
      this.db.run('UPDATE devices SET last_seen = ? WHERE account = ? AND device = ?', [
        now,
        account,
        device,
      ]);
      return Number(row.cursor);
    }
    const others =
      this.db.get('SELECT 1 AS x FROM devices WHERE account = ? LIMIT 1', [account]) !== undefined;
    const cursor = others ? head : 0;
    this.db.run('INSERT INTO devices(account, device, cursor, created, last_seen) VALUES (?, ?, ?, ?, ?)', [
      account,
      device,
      cursor,
      now,
      now,
    ]);
    return cursor;
  }

  /** true when the account has a device other than `device`. */
  hasOtherDevice(account: string, device: string): boolean {
    return (
      this.db.get('SELECT 1 AS x FROM devices WHERE account = ? AND device != ? LIMIT 1', [
        account,
        device,
      ]) !== undefined
    );
  }

  /** Cursors only move forward. */
  advanceCursor(account: string, device: string, seq: number): number {
    this.db.run('UPDATE devices SET cursor = max(cursor, ?) WHERE account = ? AND device = ?', [
      seq,
      account,
      device,
    ]);
    return Number(
      this.db.get<{ cursor: number }>('SELECT cursor FROM devices WHERE account = ? AND device = ?', [
        account,
        device,
      ])?.cursor ?? 0,
    );
  }

  /** Lowest cursor over the account's devices: everything at or below it was received by all of them. */
  minCursor(account: string): number | undefined {
    const row = this.db.get<{ c: number | null }>('SELECT min(cursor) AS c FROM devices WHERE account = ?', [
      account,
    ]);
    return row?.c === null || row?.c === undefined ? undefined : Number(row.c);
  }

  addInvite(code: string, now: number, expires: number): void {
    this.db.run('INSERT INTO invites(code, created, expires) VALUES (?, ?, ?)', [code, now, expires]);
  }

  /** Marks the invite used; false when it is unknown, used or expired. */
  useInvite(code: string, by: string, now: number): boolean {
    return (
      this.db.run(
        'UPDATE invites SET used_by = ?, used_at = ? WHERE code = ? AND used_by IS NULL AND expires > ?',
        [by, now, code, now],
      ).changes === 1
    );
  }
}
