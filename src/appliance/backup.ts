import { createWriteStream } from 'node:fs';
import {
  chmod,
  copyFile,
  lstat,
  mkdir,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  writeFile,
} from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar';
import { z } from 'zod';
import { PmbError } from '../protocol/errors.js';
import { storedServerFingerprint } from '../server/server-identity.js';
import { openStore, snapshotDatabaseFile } from '../store/index.js';
import { findServingServer, type ServingServer } from './backup-running.js';
import { errnoOf, sha256File, siblingTemp, syncDir, syncFile } from './durable-files.js';
import { type LocalResponse, localRequest } from './local-http.js';
import { ApplianceError as BackupError } from './task-error.js';

/**
 * A PMB backup is a gzipped tar (readable with `tar xzf`) of one folder, pmb-backup/, holding
 * manifest.json and the files it lists with their size and SHA-256: the database snapshot (server
 * identity key, accounts, records, mailboxes) and the data dir's small files. It holds the server's
 * secret key, so it is written 0600.
 */
export const BACKUP_FORMAT = 'pmb-backup';
export const BACKUP_FORMAT_VERSION = 1;
const ROOT = 'pmb-backup';
const DATABASE = 'pmb.db';
/** The data dir's small files a backup carries besides the database, when present. */
const SMALL_FILES = ['admin-token', 'pmb.toml'] as const;
const ALLOWED = new Set<string>([DATABASE, ...SMALL_FILES]);
/** Files a restore puts in place, and the database's journal files that must not outlive the old DB. */
const RESTORED_NAMES = [DATABASE, `${DATABASE}-wal`, `${DATABASE}-shm`, ...SMALL_FILES, 'server.json'];
const MAX_MANIFEST_BYTES = 64 * 1024;

const backupManifest = z.object({
  format: z.literal(BACKUP_FORMAT),
  formatVersion: z.number().int().positive(),
  created: z.string(),
  pmbVersion: z.string(),
  fingerprint: z.string().regex(/^[0-9a-f]{40}$/),
  domain: z.string().optional(),
  files: z
    .array(
      z.object({
        name: z.string(),
        size: z.number().int().nonnegative(),
        sha256: z.string().regex(/^[0-9a-f]{64}$/),
      }),
    )
    .min(1),
});
export type BackupManifest = z.infer<typeof backupManifest>;

export interface CreateBackupOptions {
  dataDir: string;
  /** Archive to write; default <dataDir>/backups/pmb-backup-<time>.tar.gz. */
  out?: string;
  /** Recorded in the manifest. */
  pmbVersion: string;
  /** Admin token for a running server; default the one in the data dir. */
  adminToken?: string;
  signal?: AbortSignal;
  now?: () => Date;
}

export interface BackupResult {
  path: string;
  size: number;
  sha256: string;
  manifest: BackupManifest;
  /** How the database was copied: by the running server, or from the file with no server running. */
  via: 'server' | 'file';
}

/**
 * Backs up a data dir. With a server running on it the server takes the database snapshot itself (admin
 * API, VACUUM INTO, so the copy is consistent while it serves); otherwise the database file is opened
 * read-only and copied the same way.
 */
export async function createBackup(opts: CreateBackupOptions): Promise<BackupResult> {
  const dataDir = resolve(opts.dataDir);
  const now = (opts.now ?? (() => new Date()))();
  const running = await findServingServer(dataDir, opts.signal);
  const staging = join(dataDir, 'backups', `.staging-${process.pid}-${now.getTime()}`);
  const folder = join(staging, ROOT);
  await mkdir(folder, { recursive: true, mode: 0o700 });
  try {
    let fingerprint: string;
    let domain: string | undefined;
    let via: BackupResult['via'];
    if (running) {
      const snap = await snapshotThroughServer(running, opts.adminToken, opts.signal);
      // The server wrote it in <dataDir>/backups: same filesystem, so this is a rename, not a copy.
      await rename(snap.path, join(folder, DATABASE));
      if ((await sha256File(join(folder, DATABASE))) !== snap.sha256) {
        throw new BackupError(
          'bad_backup',
          'The snapshot changed between the server writing it and archiving',
        );
      }
      fingerprint = snap.fingerprint;
      domain = running.domain;
      via = 'server';
    } else {
      const db = join(dataDir, DATABASE);
      if (!(await exists(db))) {
        throw new BackupError(
          'no_database',
          `No PMB database in ${dataDir} (no ${DATABASE}): nothing to back up`,
        );
      }
      snapshotDatabaseFile(db, join(folder, DATABASE));
      await chmod(join(folder, DATABASE), 0o600);
      fingerprint = (await fingerprintOfDatabase(join(folder, DATABASE))) ?? '';
      via = 'file';
    }
    if (!fingerprint) {
      throw new BackupError('no_database', `The database in ${dataDir} holds no server identity yet`);
    }
    for (const name of SMALL_FILES) {
      try {
        await copyFile(join(dataDir, name), join(folder, name));
        await chmod(join(folder, name), 0o600);
      } catch (err) {
        if (errnoOf(err) !== 'ENOENT') throw err;
      }
    }
    const files: BackupManifest['files'] = [];
    for (const name of [DATABASE, ...SMALL_FILES]) {
      const path = join(folder, name);
      if (!(await exists(path))) continue;
      files.push({ name, size: (await stat(path)).size, sha256: await sha256File(path) });
    }
    const manifest: BackupManifest = {
      format: BACKUP_FORMAT,
      formatVersion: BACKUP_FORMAT_VERSION,
      created: now.toISOString(),
      pmbVersion: opts.pmbVersion,
      fingerprint,
      ...(domain ? { domain } : {}),
      files,
    };
    await writeFile(join(folder, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`, { mode: 0o600 });

    const out = resolve(opts.out ?? join(dataDir, 'backups', `pmb-backup-${stamp(now)}.tar.gz`));
    await mkdir(dirname(out), { recursive: true, mode: 0o700 });
    const tmp = siblingTemp(out);
    try {
      // Created 0600 (not chmod-ed later): the archive holds the server's secret key from its first byte.
      const pack = tar.create({ gzip: true, portable: true, cwd: staging }, [
        `${ROOT}/manifest.json`,
        ...files.map((f) => `${ROOT}/${f.name}`),
      ]);
      await pipeline(pack, createWriteStream(tmp, { flags: 'wx', mode: 0o600 }));
      await syncFile(tmp);
      await rename(tmp, out);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    await syncDir(dirname(out));
    return { path: out, size: (await stat(out)).size, sha256: await sha256File(out), manifest, via };
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

export interface RestoreOptions {
  file: string;
  dataDir: string;
  /** Restore into a non-empty data dir; what it held is moved to <dataDir>/replaced-<time>/. */
  force?: boolean;
  signal?: AbortSignal;
  now?: () => Date;
}

export interface RestoreResult {
  dataDir: string;
  manifest: BackupManifest;
  /** Where the files a forced restore replaced were moved, if any. */
  replacedDir?: string;
}

/**
 * Restores a backup into a data dir: refuses while a server runs on it and (without force) when it is not
 * empty; unpacks into a staging folder, checks every file against the manifest's size and SHA-256 and the
 * database against the manifest's server fingerprint, and only then moves the files in place.
 */
export async function restoreBackup(opts: RestoreOptions): Promise<RestoreResult> {
  const dataDir = resolve(opts.dataDir);
  const file = resolve(opts.file);
  const now = (opts.now ?? (() => new Date()))();
  if (!(await exists(file))) throw new BackupError('not_found', `No such backup file: ${file}`);
  const running = await findServingServer(dataDir, opts.signal);
  if (running) {
    throw new BackupError(
      'server_running',
      `A PMB server is running on ${dataDir} (${running.url}): stop it before restoring over its data`,
    );
  }
  const entries = await listDir(dataDir);
  if (entries.length > 0 && !opts.force) {
    throw new BackupError(
      'not_empty',
      `${dataDir} is not empty (${entries.slice(0, 3).join(', ')}${entries.length > 3 ? ', ...' : ''}): ` +
        'restore into a fresh data dir, or pass --force to move what is there aside',
    );
  }
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const staging = join(dataDir, `.restore-${process.pid}-${now.getTime()}`);
  await mkdir(staging, { mode: 0o700 });
  try {
    const manifest = await unpackAndVerify(file, staging);
    const folder = join(staging, ROOT);
    const found = await fingerprintOfDatabase(join(folder, DATABASE)).catch(() => undefined);
    if (found !== manifest.fingerprint) {
      throw new BackupError(
        'bad_backup',
        `${file}: the database does not hold the server identity its manifest names (${manifest.fingerprint})`,
      );
    }
    let replacedDir: string | undefined;
    for (const name of RESTORED_NAMES) {
      if (!(await exists(join(dataDir, name)))) continue;
      replacedDir ??= join(dataDir, `replaced-${stamp(now)}`);
      await mkdir(replacedDir, { recursive: true, mode: 0o700 });
      await rename(join(dataDir, name), join(replacedDir, name));
    }
    // The database last: a data dir with a database is a restored one.
    const order = manifest.files
      .map((f) => f.name)
      .sort((a, b) => Number(a === DATABASE) - Number(b === DATABASE));
    for (const name of order) {
      const to = join(dataDir, name);
      await chmod(join(folder, name), 0o600);
      await syncFile(join(folder, name));
      await rename(join(folder, name), to);
    }
    await syncDir(dataDir);
    return { dataDir, manifest, ...(replacedDir ? { replacedDir } : {}) };
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

/** Reads and checks a backup without restoring it. */
export async function verifyBackup(file: string, scratchDir: string): Promise<BackupManifest> {
  const staging = join(scratchDir, `.verify-${process.pid}-${Date.now()}`);
  await mkdir(staging, { recursive: true, mode: 0o700 });
  try {
    return await unpackAndVerify(resolve(file), staging);
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

async function unpackAndVerify(file: string, staging: string): Promise<BackupManifest> {
  const damaged = (detail: string) =>
    new BackupError('bad_backup', `${file} is not a usable PMB backup (damaged or not a backup): ${detail}`);
  const seen = new Set<string>();
  try {
    await tar.extract({
      file,
      cwd: staging,
      strict: true,
      // Only the known regular files of pmb-backup/: no links, devices or paths elsewhere.
      filter: (path, entry) => {
        const type = 'type' in entry ? entry.type : 'File';
        if (type === 'Directory' && path.replace(/\/$/, '') === ROOT) return true;
        const name = path.startsWith(`${ROOT}/`) ? path.slice(ROOT.length + 1) : '';
        const ok = type === 'File' && (name === 'manifest.json' || ALLOWED.has(name)) && !seen.has(name);
        if (ok) seen.add(name);
        return ok;
      },
    });
  } catch (err) {
    throw damaged(err instanceof Error ? err.message : String(err));
  }
  const folder = join(staging, ROOT);
  let manifest: BackupManifest;
  try {
    const text = await readFile(join(folder, 'manifest.json'), 'utf8');
    if (text.length > MAX_MANIFEST_BYTES) throw new Error('manifest.json is too large');
    const parsed = backupManifest.safeParse(JSON.parse(text));
    if (!parsed.success) throw new Error(`manifest.json is invalid: ${parsed.error.issues[0]?.message}`);
    manifest = parsed.data;
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') throw damaged('it has no pmb-backup/manifest.json');
    throw damaged(err instanceof Error ? err.message : String(err));
  }
  if (manifest.formatVersion > BACKUP_FORMAT_VERSION) {
    throw new BackupError(
      'unsupported_backup',
      `${file} is backup format ${manifest.formatVersion}, made by PMB ${manifest.pmbVersion}; ` +
        `this PMB reads format ${BACKUP_FORMAT_VERSION}: upgrade PMB first`,
    );
  }
  if (!manifest.files.some((f) => f.name === DATABASE)) throw damaged('the manifest lists no database');
  for (const f of manifest.files) {
    if (!ALLOWED.has(f.name)) throw damaged(`the manifest lists an unexpected file ${f.name}`);
    const path = join(folder, f.name);
    let size: number;
    try {
      size = (await lstat(path)).size;
    } catch {
      throw damaged(`${f.name} is missing`);
    }
    if (size !== f.size) throw damaged(`${f.name} is ${size} bytes, the manifest says ${f.size}`);
    if ((await sha256File(path)) !== f.sha256) throw damaged(`${f.name} does not match its SHA-256`);
  }
  for (const name of seen) {
    if (name !== 'manifest.json' && !manifest.files.some((f) => f.name === name)) {
      throw damaged(`${name} is in the archive but not in its manifest`);
    }
  }
  return manifest;
}

interface ServerSnapshot {
  path: string;
  sha256: string;
  fingerprint: string;
}

async function snapshotThroughServer(
  running: ServingServer,
  token: string | undefined,
  signal: AbortSignal | undefined,
): Promise<ServerSnapshot> {
  const adminToken = token ?? (await running.adminToken());
  let res: LocalResponse;
  signal?.throwIfAborted();
  try {
    res = await localRequest(`${running.httpUrl}/admin/backup`, {
      method: 'POST',
      headers: { authorization: `Bearer ${adminToken}` },
      timeoutMs: 10 * 60_000,
    });
  } catch (cause) {
    throw new PmbError('unavailable', `Cannot reach the PMB server at ${running.httpUrl}`, { cause });
  }
  const body = parseJson(res.body) as Partial<ServerSnapshot> & {
    error?: { code?: string; message?: string };
  };
  if (res.status === 403) {
    throw new BackupError('forbidden', `The server at ${running.httpUrl} refused the admin token`);
  }
  if (res.status !== 200 || !body.path || !body.sha256 || !body.fingerprint) {
    throw new BackupError(
      body.error?.code ?? 'internal',
      `The server could not take a snapshot: ${body.error?.message ?? `HTTP ${res.status}`}`,
    );
  }
  return { path: body.path, sha256: body.sha256, fingerprint: body.fingerprint };
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return {};
  }
}

async function fingerprintOfDatabase(path: string): Promise<string | undefined> {
  const store = openStore(path);
  try {
    return await storedServerFingerprint(store);
  } finally {
    store.close();
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return false;
    throw err;
  }
}

async function listDir(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return [];
    if (errnoOf(err) === 'ENOTDIR') throw new BackupError('not_empty', `${dir} is a file, not a directory`);
    throw err;
  }
}

/** 2026-11-12T10:20:30.123Z -> 20261112-102030 */
function stamp(d: Date): string {
  return d.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
}
