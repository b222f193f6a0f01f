import type { Db } from './db.js';

/** Small server-wide values (server identity key, settings) kept in the database so a backup holds them. */
export class MetaStore {
  constructor(private readonly db: Db) {}

  get(key: string): Uint8Array | undefined {
    return this.db.get<{ value: Uint8Array }>('SELECT value FROM meta WHERE key = ?', [key])?.value;
  }

  set(key: string, value: Uint8Array): void {
    this.db.run(
      'INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value',
      [key, value],
    );
  }
}
