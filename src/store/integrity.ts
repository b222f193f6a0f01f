import Database from 'libsql';
import type { Db } from './db.js';

/** SQLite's own check of the database's structure: ['ok'] when sound, else the problems it found. */
export function integrityCheck(db: Db): string[] {
  return db.all<{ integrity_check: string }>('PRAGMA integrity_check').map((r) => r.integrity_check);
}

/** The same check on a database file nobody is serving, opened read-only (nothing is migrated or written). */
export function integrityCheckFile(path: string): string[] {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    db.exec('PRAGMA busy_timeout = 5000');
    return (db.prepare('PRAGMA integrity_check').all([]) as { integrity_check: string }[]).map(
      (r) => r.integrity_check,
    );
  } finally {
    db.close();
  }
}
