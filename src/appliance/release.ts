import { copyFile, mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Identity } from '../crypto/index.js';
import { sha256File } from './durable-files.js';
import {
  isVersion,
  MANIFEST_FILE,
  PLATFORMS,
  type ReleaseManifest,
  SIGNATURE_FILE,
  SUMS_FILE,
  signManifest,
} from './release-manifest.js';
import { ApplianceError } from './task-error.js';

export interface MakeReleaseOptions {
  /** The release key (secret half, unlocked). */
  key: Identity;
  version: string;
  /** Where the built binaries are: pmb-linux-x64 and/or pmb-linux-arm64 (default dist/). */
  from: string;
  /** The release directory to write (created; must not already hold a release). */
  out: string;
  notes?: string;
  date?: Date;
}

export interface Release {
  dir: string;
  manifest: ReleaseManifest;
  files: string[];
}

/**
 * A signed release directory: the binaries found in `from`, manifest.json with their SHA-256 and size,
 * manifest.json.sig (armored detached signature by the release key) and SHA256SUMS for install.sh.
 * Publish the directory as is (any static HTTPS host); `pmb upgrade --source URL` reads it.
 */
export async function makeRelease(opts: MakeReleaseOptions): Promise<Release> {
  if (!isVersion(opts.version)) {
    throw new ApplianceError('usage', `"${opts.version}" is not a version like 1.2.3`);
  }
  const from = resolve(opts.from);
  const out = resolve(opts.out);
  const binaries: ReleaseManifest['binaries'] = {};
  const names: string[] = [];
  for (const platform of PLATFORMS) {
    const name = `pmb-${platform}`;
    const path = join(from, name);
    const info = await stat(path).catch(() => undefined);
    if (!info?.isFile()) continue;
    binaries[platform] = { file: name, sha256: await sha256File(path), size: info.size };
    names.push(name);
  }
  if (names.length === 0) {
    throw new ApplianceError(
      'no_binaries',
      `No release binaries in ${from} (expected ${PLATFORMS.map((p) => `pmb-${p}`).join(' and/or ')}): ` +
        'build them first (npm run build:binary)',
    );
  }
  await mkdir(out, { recursive: true });
  const existing = await readdir(out);
  if (existing.includes(MANIFEST_FILE)) {
    throw new ApplianceError(
      'exists',
      `${out} already holds a release (${MANIFEST_FILE}); pick another --out`,
    );
  }
  for (const name of names) {
    await copyFile(join(from, name), join(out, name));
  }
  const manifest: ReleaseManifest = {
    format: 'pmb-release',
    version: opts.version,
    date: (opts.date ?? new Date()).toISOString(),
    binaries,
    ...(opts.notes ? { notes: opts.notes } : {}),
  };
  const bytes = new TextEncoder().encode(`${JSON.stringify(manifest, null, 2)}\n`);
  await writeFile(join(out, MANIFEST_FILE), bytes);
  await writeFile(join(out, SIGNATURE_FILE), await signManifest(opts.key, bytes));
  const sums = names.map((n) => {
    const platform = n.slice('pmb-'.length) as keyof ReleaseManifest['binaries'];
    return `${binaries[platform]?.sha256}  ${n}\n`;
  });
  await writeFile(join(out, SUMS_FILE), sums.join(''));
  return { dir: out, manifest, files: [...names, MANIFEST_FILE, SIGNATURE_FILE, SUMS_FILE] };
}
