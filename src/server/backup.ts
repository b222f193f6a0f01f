import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { chmod, mkdir, rm, stat } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { randomBytes, toHex } from '../protocol/bytes.js';
import { PmbError } from '../protocol/errors.js';
import type { Context } from './context.js';

/** Where the server writes database snapshots for `pmb backup create`: inside its own data dir. */
export const SNAPSHOT_DIR = 'backups';

export interface Snapshot {
  /** Absolute path of the snapshot file (0600), in <dataDir>/backups. */
  path: string;
  size: number;
  /** Hex SHA-256 of the file. */
  sha256: string;
  /** The server identity the database holds. */
  fingerprint: string;
  created: number;
}

/**
 * A consistent copy of the live database (VACUUM INTO), taken without stopping the server: every write
 * acknowledged before the call is in it. The file name is chosen here, never by the caller, so the admin
 * API cannot be made to write anywhere else.
 */
export async function takeSnapshot(ctx: Context): Promise<Snapshot> {
  const db = ctx.config.database;
  if (db !== undefined && !isAbsolute(db) && /^[a-z][a-z0-9+.-]*:/i.test(db)) {
    throw new PmbError('bad_request', 'Backups of a remote (libsql URL) database are made on that server');
  }
  const dir = join(ctx.config.dataDir, SNAPSHOT_DIR);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const created = ctx.now();
  const path = join(dir, `snapshot-${created}-${toHex(randomBytes(4))}.db`);
  try {
    // The file holds the server's secret key: private from the first byte the owner can arrange.
    ctx.store.snapshot(path);
    await chmod(path, 0o600);
    const { size } = await stat(path);
    return { path, size, sha256: await sha256File(path), fingerprint: ctx.identity.fingerprint, created };
  } catch (err) {
    await rm(path, { force: true });
    if ((err as NodeJS.ErrnoException).code === 'ENOSPC' || /SQLITE_FULL|disk is full/i.test(String(err))) {
      throw new PmbError('storage_full', 'No room on the disk for a backup snapshot');
    }
    throw err;
  }
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
