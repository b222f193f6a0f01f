import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { copyFile, open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** Hex SHA-256 of a file, streamed (backups and binaries are too large to read at once on a Pi). */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** A fresh name next to `path` (same directory, so a rename onto `path` is atomic). */
export function siblingTemp(path: string, tag = 'tmp'): string {
  return join(dirname(path), `.${basename(path)}.${tag}-${randomBytes(4).toString('hex')}`);
}

/** fsync a file by path. */
export async function syncFile(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** fsync a directory, so a rename in it survives a power cut. Some filesystems refuse: that is fine. */
export async function syncDir(dir: string): Promise<void> {
  try {
    const fh = await open(dir, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch {
    // EISDIR/EINVAL/EPERM on filesystems that cannot fsync directories.
  }
}

/**
 * Copy `from` over `to` atomically: copy next to `to`, set the mode, fsync, rename. A reader (or a power
 * cut) sees the old `to` or the complete new one, never half of one.
 */
export async function copyFileAtomic(from: string, to: string, mode: number): Promise<void> {
  const tmp = siblingTemp(to, 'copy');
  try {
    await copyFile(from, tmp);
    const fh = await open(tmp, 'r+');
    try {
      await fh.chmod(mode);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, to);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  await syncDir(dirname(to));
}

export function errnoOf(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}
