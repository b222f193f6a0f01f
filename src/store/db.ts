import { closeSync, openSync } from 'node:fs';
import Database from 'libsql';

type Row = Record<string, unknown>;
export type SqlValue = string | number | bigint | Uint8Array | null;

/**
 * The one door to libsql. It smooths over libsql's differences from better-sqlite3: parameters always go
 * as one array (a lone Buffer argument is taken as named parameters, and a lone Uint8Array crashes the
 * native addon), rows lose their `_metadata`, and blobs come back as Uint8Array rather than ArrayBuffer.
 */
export class Db {
  readonly #db: Database.Database;
  readonly #statements = new Map<string, Database.Statement>();

  constructor(url: string) {
    createPrivately(url);
    this.#db = new Database(url);
    this.#db.exec('PRAGMA journal_mode = WAL');
    // FULL: the WAL is fsynced at every commit, so an acknowledged message survives power loss.
    this.#db.exec('PRAGMA synchronous = FULL');
    this.#db.exec('PRAGMA foreign_keys = ON');
    this.#db.exec('PRAGMA busy_timeout = 5000');
  }

  #prepare(sql: string): Database.Statement {
    let st = this.#statements.get(sql);
    if (!st) {
      st = this.#db.prepare(sql);
      this.#statements.set(sql, st);
    }
    return st;
  }

  exec(sql: string): void {
    this.#db.exec(sql);
  }

  run(sql: string, params: SqlValue[] = []): { changes: number; lastInsertRowid: number } {
    const r = this.#prepare(sql).run(params.map(toSql));
    return { changes: Number(r.changes), lastInsertRowid: Number(r.lastInsertRowid) };
  }

  get<T extends Row>(sql: string, params: SqlValue[] = []): T | undefined {
    const row = this.#prepare(sql).get(params.map(toSql)) as Row | undefined;
    return row === undefined ? undefined : (clean(row) as T);
  }

  all<T extends Row>(sql: string, params: SqlValue[] = []): T[] {
    return (this.#prepare(sql).all(params.map(toSql)) as Row[]).map((r) => clean(r) as T);
  }

  /** Run fn in one write transaction (BEGIN IMMEDIATE); rolled back if it throws. */
  transaction<T>(fn: () => T): T {
    this.#db.exec('BEGIN IMMEDIATE');
    try {
      const out = fn();
      this.#db.exec('COMMIT');
      return out;
    } catch (err) {
      if (this.#db.inTransaction) this.#db.exec('ROLLBACK');
      throw err;
    }
  }

  /**
   * A consistent copy of the whole database in a new file (SQLite's VACUUM INTO): it reads one snapshot,
   * so writes committed before the call are in it and later ones are not. Blocks while it copies.
   */
  snapshotTo(path: string): void {
    this.#db.prepare('VACUUM INTO ?').run([path]);
  }

  close(): void {
    this.#statements.clear();
    this.#db.close();
  }
}

/**
 * Copies a database file nobody is serving into `out`, opening it read-only (no migration, no journal
 * change), for backups taken while the server is stopped.
 */
export function snapshotDatabaseFile(path: string, out: string): void {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    db.exec('PRAGMA busy_timeout = 5000');
    db.prepare('VACUUM INTO ?').run([out]);
  } finally {
    db.close();
  }
}

function toSql(v: SqlValue): unknown {
  // libsql wants Buffers for blobs on Node; a plain Uint8Array view works too but Buffer is its native shape.
  if (v instanceof Uint8Array && typeof Buffer !== 'undefined' && !(v instanceof Buffer)) {
    return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  }
  return v;
}

function clean(row: Row): Row {
  const out: Row = {};
  for (const [k, v] of Object.entries(row)) {
    if (k === '_metadata') continue;
    out[k] = v instanceof ArrayBuffer ? new Uint8Array(v) : v;
  }
  return out;
}

/**
 * The database holds the server's secret key: a new local file is made 0600 before libsql opens it (SQLite
 * gives its -wal and -shm files the same mode). URLs (libsql://, http://) and :memory: are left alone.
 */
function createPrivately(url: string): void {
  if (url === ':memory:' || /^[a-z][a-z0-9+.-]*:/i.test(url)) return;
  closeSync(openSync(url, 'a', 0o600));
}
