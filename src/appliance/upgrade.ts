import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { link, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import type { PublicIdentity, Verified } from '../crypto/index.js';
import { copyFileAtomic, errnoOf, siblingTemp, syncDir } from './durable-files.js';
import { localRequest } from './local-http.js';
import {
  type BinaryEntry,
  compareVersions,
  MANIFEST_FILE,
  MAX_MANIFEST_BYTES,
  type Platform,
  type ReleaseManifest,
  SIGNATURE_FILE,
  verifyManifest,
} from './release-manifest.js';
import { ApplianceError } from './task-error.js';

/**
 * Where releases come from: a directory (tests, offline boxes, a USB stick) or an https:// URL of a
 * release directory. Plain http:// only to loopback (a local mirror); the signature is what makes a
 * release trusted, never the place it came from.
 */
export type ReleaseSource = { kind: 'dir'; dir: string } | { kind: 'url'; base: URL };

export function parseSource(text: string): ReleaseSource {
  const t = text.trim();
  if (t.startsWith('file://')) return { kind: 'dir', dir: stripManifest(fileURLToPath(t)) };
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(t)) return { kind: 'dir', dir: stripManifest(resolve(t)) };
  let url: URL;
  try {
    url = new URL(t);
  } catch {
    throw new ApplianceError('usage', `"${text}" is not a URL or a directory`);
  }
  const loopback = ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname);
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && loopback)) {
    throw new ApplianceError(
      'usage',
      `The release source must be https:// (or a local directory), not ${text}`,
    );
  }
  if (url.pathname.endsWith(`/${MANIFEST_FILE}`)) url.pathname = url.pathname.slice(0, -MANIFEST_FILE.length);
  if (!url.pathname.endsWith('/')) url.pathname += '/';
  return { kind: 'url', base: url };
}

function stripManifest(path: string): string {
  return path.endsWith(`/${MANIFEST_FILE}`) ? dirname(path) : path;
}

function describeSource(source: ReleaseSource): string {
  return source.kind === 'dir' ? source.dir : source.base.toString();
}

async function readSmall(source: ReleaseSource, name: string, signal?: AbortSignal): Promise<Uint8Array> {
  if (source.kind === 'dir') {
    const path = join(source.dir, name);
    try {
      const info = await stat(path);
      if (info.size > MAX_MANIFEST_BYTES) throw new ApplianceError('bad_release', `${path} is too large`);
      return new Uint8Array(await readFile(path));
    } catch (err) {
      if (err instanceof ApplianceError) throw err;
      throw new ApplianceError(
        'no_release',
        `No release at ${source.dir}: cannot read ${name} (${errnoOf(err)})`,
      );
    }
  }
  const url = new URL(name, source.base);
  let res: Response;
  try {
    res = await fetch(url, { signal: withTimeout(signal, 30_000), redirect: 'follow' });
  } catch (cause) {
    throw new ApplianceError('unavailable', `Cannot reach ${url}: ${(cause as Error).message}`, { cause });
  }
  if (!res.ok) throw new ApplianceError('no_release', `${url} answered HTTP ${res.status}`);
  const body = new Uint8Array(await res.arrayBuffer());
  if (body.length > MAX_MANIFEST_BYTES) throw new ApplianceError('bad_release', `${url} is too large`);
  return body;
}

/** Reads the release manifest at `source` and checks its signature against `trustedKeys`. */
export async function fetchManifest(
  source: ReleaseSource,
  trustedKeys: readonly PublicIdentity[],
  signal?: AbortSignal,
): Promise<Verified<ReleaseManifest>> {
  const manifest = await readSmall(source, MANIFEST_FILE, signal);
  const sig = new TextDecoder().decode(await readSmall(source, SIGNATURE_FILE, signal));
  return verifyManifest(manifest, sig, trustedKeys);
}

export interface CheckResult {
  current: string;
  available: string;
  newer: boolean;
  date: string;
  notes: string | undefined;
  /** Whether the release has a binary for this machine. */
  hasBinary: boolean;
  manifest: Verified<ReleaseManifest>;
}

export async function checkForUpgrade(opts: {
  source: ReleaseSource;
  trustedKeys: readonly PublicIdentity[];
  currentVersion: string;
  platform: Platform;
  signal?: AbortSignal;
}): Promise<CheckResult> {
  const manifest = await fetchManifest(opts.source, opts.trustedKeys, opts.signal);
  return {
    current: opts.currentVersion,
    available: manifest.version,
    newer: compareVersions(manifest.version, opts.currentVersion) > 0,
    date: manifest.date,
    notes: manifest.notes,
    hasBinary: manifest.binaries[opts.platform] !== undefined,
    manifest,
  };
}

/**
 * Downloads (or copies) the binary for `platform` to `dest`, checking its size as it comes and its SHA-256
 * at the end; on any mismatch `dest` is removed. The file is made executable and fsynced.
 */
export async function downloadBinary(opts: {
  source: ReleaseSource;
  manifest: Verified<ReleaseManifest>;
  platform: Platform;
  dest: string;
  onProgress?: (done: number, total: number) => void;
  signal?: AbortSignal;
}): Promise<void> {
  const entry: BinaryEntry | undefined = opts.manifest.binaries[opts.platform];
  if (!entry) {
    throw new ApplianceError(
      'no_binary',
      `Release ${opts.manifest.version} has no binary for ${opts.platform}`,
    );
  }
  const input = await openBinary(opts.source, entry, opts.signal);
  const hash = createHash('sha256');
  let done = 0;
  const meter = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      done += chunk.length;
      if (done > entry.size) {
        cb(
          new ApplianceError(
            'bad_release',
            `The binary is larger than the ${entry.size} bytes its manifest says`,
          ),
        );
        return;
      }
      hash.update(chunk);
      opts.onProgress?.(done, entry.size);
      cb(null, chunk);
    },
  });
  try {
    await pipeline(input, meter, createWriteStream(opts.dest, { flags: 'wx', mode: 0o755 }), {
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    if (done !== entry.size) {
      throw new ApplianceError('bad_release', `The binary is ${done} bytes, its manifest says ${entry.size}`);
    }
    const got = hash.digest('hex');
    if (got !== entry.sha256) {
      throw new ApplianceError(
        'bad_release',
        `The downloaded binary does not match the SHA-256 in the signed manifest (${got}): refusing it`,
      );
    }
    const fh = await open(opts.dest, 'r+');
    try {
      await fh.chmod(0o755);
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch (err) {
    await rm(opts.dest, { force: true });
    throw err;
  }
}

async function openBinary(
  source: ReleaseSource,
  entry: BinaryEntry,
  signal?: AbortSignal,
): Promise<Readable> {
  if (entry.url !== undefined || source.kind === 'url') {
    const url =
      entry.url !== undefined
        ? new URL(entry.url)
        : new URL(entry.file ?? '', (source as { base: URL }).base);
    let res: Response;
    try {
      res = await fetch(url, { ...(signal ? { signal } : {}), redirect: 'follow' });
    } catch (cause) {
      throw new ApplianceError('unavailable', `Cannot download ${url}: ${(cause as Error).message}`, {
        cause,
      });
    }
    if (!res.ok || !res.body) throw new ApplianceError('no_release', `${url} answered HTTP ${res.status}`);
    return Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>);
  }
  const path = join(source.dir, entry.file ?? '');
  try {
    await stat(path);
  } catch {
    throw new ApplianceError('no_release', `The release lists ${entry.file}, but ${path} is not there`);
  }
  return createReadStream(path);
}

/** The copy of the replaced binary kept beside it: pmb -> pmb.previous. */
export function previousPath(target: string): string {
  return `${target}.previous`;
}

/**
 * Puts a verified binary (already next to `target`, fsynced) in place: the current binary is kept as
 * pmb.previous (a hard link: no copy, and the old file stays whole), then the new one is renamed over the
 * target. Each step is one atomic rename; a power cut leaves either binary in place, never half of one.
 */
export async function swapBinary(target: string, incoming: string): Promise<void> {
  const previous = previousPath(target);
  const tmp = siblingTemp(previous, 'link');
  try {
    await link(target, tmp);
    await rename(tmp, previous);
  } catch (err) {
    await rm(tmp, { force: true });
    if (!['EPERM', 'EXDEV', 'ENOTSUP', 'EOPNOTSUPP'].includes(errnoOf(err) ?? '')) throw err;
    const { mode } = await stat(target);
    await copyFileAtomic(target, previous, mode & 0o7777);
  }
  await rename(incoming, target);
  await syncDir(dirname(target));
}

/** Puts pmb.previous back in place, atomically, keeping pmb.previous. */
export async function restorePrevious(target: string): Promise<void> {
  const { mode } = await stat(previousPath(target));
  await copyFileAtomic(previousPath(target), target, mode & 0o7777);
}

/**
 * Polls GET <httpUrl>/health until it answers ok with `version`, or the timeout passes. Returns the last
 * problem seen, or undefined when healthy.
 */
export async function waitForHealth(
  httpUrl: string,
  version: string,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<string | undefined> {
  const deadline = Date.now() + timeoutMs;
  let problem = 'no answer';
  while (Date.now() < deadline) {
    signal?.throwIfAborted();
    try {
      const res = await localRequest(`${httpUrl}/health`, { timeoutMs: 2000 });
      const ok = res.status === 200;
      const body = (ok ? JSON.parse(res.body) : {}) as { ok?: unknown; version?: unknown };
      if (ok && body.ok === true && body.version === version) return undefined;
      problem = ok ? `it reports version ${String(body.version)}` : `HTTP ${res.status}`;
    } catch (err) {
      problem = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return problem;
}

export interface UpgradeOptions {
  source: ReleaseSource;
  /**
   * The keys a release manifest must be signed by. The CLI passes the release key built into the program
   * and nothing else; tests pass a throwaway key. There is no flag or variable to change it.
   */
  trustedKeys: readonly PublicIdentity[];
  currentVersion: string;
  platform: Platform;
  /** The binary to replace (the running executable under systemd: /usr/local/bin/pmb). */
  target: string;
  /** Takes a backup of the server's data before anything changes; returns where it is. */
  backup?: () => Promise<string | undefined>;
  /** Restarts the service so it runs whatever binary is at `target` now. */
  restart?: () => Promise<void>;
  /** The server's HTTP base (http://127.0.0.1:8447) whose /health must report the new version. */
  healthUrl?: string;
  /** How long the new version has to become healthy before it is rolled back (default 60 s). */
  healthTimeoutMs?: number;
  onProgress?: (done: number, total: number) => void;
  /** Steps, for the user: "Downloading ...", "Restarting ...". */
  onStep?: (line: string) => void;
  signal?: AbortSignal;
}

export type UpgradeResult =
  | { status: 'up-to-date'; current: string; available: string }
  | {
      status: 'upgraded';
      from: string;
      to: string;
      backup: string | undefined;
      previous: string;
      restarted: boolean;
    };

/**
 * The whole upgrade: signed manifest -> newer? -> download and verify -> backup -> swap (keeping
 * pmb.previous) -> restart -> wait for /health to report the new version. If it does not within the
 * timeout, pmb.previous is put back, the service restarted again and an error says so (rolled_back).
 */
export async function upgrade(opts: UpgradeOptions): Promise<UpgradeResult> {
  const step = opts.onStep ?? (() => {});
  const target = resolve(opts.target);
  if (!isAbsolute(target)) throw new ApplianceError('usage', `Not an absolute path: ${opts.target}`);
  const check = await checkForUpgrade(opts);
  const { manifest } = check;
  if (!check.newer)
    return { status: 'up-to-date', current: opts.currentVersion, available: manifest.version };
  if (!check.hasBinary) {
    throw new ApplianceError('no_binary', `Release ${manifest.version} has no binary for ${opts.platform}`);
  }
  const targetInfo = await stat(target).catch(() => undefined);
  if (!targetInfo?.isFile())
    throw new ApplianceError('usage', `${target} is not the pmb binary (no such file)`);

  const incoming = siblingTemp(target, `new-${manifest.version}`);
  step(`Downloading pmb ${manifest.version} for ${opts.platform} from ${describeSource(opts.source)}`);
  await downloadBinary({
    source: opts.source,
    manifest,
    platform: opts.platform,
    dest: incoming,
    ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  let backup: string | undefined;
  try {
    if (opts.backup) {
      step('Backing up the server data');
      backup = await opts.backup();
      if (backup) step(`Backup: ${backup}`);
    }
    opts.signal?.throwIfAborted();
    await swapBinary(target, incoming);
  } catch (err) {
    await rm(incoming, { force: true });
    throw err;
  }
  step(`Installed pmb ${manifest.version} at ${target} (the previous binary is ${previousPath(target)})`);
  if (!opts.restart) {
    return {
      status: 'upgraded',
      from: opts.currentVersion,
      to: manifest.version,
      backup,
      previous: previousPath(target),
      restarted: false,
    };
  }

  const timeout = opts.healthTimeoutMs ?? 60_000;
  step('Restarting the service');
  /** Restart and wait until /health reports `version`: undefined when healthy, else what went wrong. */
  const { restart } = opts;
  const restartInto = async (version: string): Promise<string | undefined> => {
    try {
      await restart();
      return opts.healthUrl ? await waitForHealth(opts.healthUrl, version, timeout, opts.signal) : undefined;
    } catch (err) {
      return `the restart failed: ${(err as Error).message}`;
    }
  };
  const problem = await restartInto(manifest.version);
  if (problem === undefined) {
    step(`pmb ${manifest.version} is up and healthy`);
    return {
      status: 'upgraded',
      from: opts.currentVersion,
      to: manifest.version,
      backup,
      previous: previousPath(target),
      restarted: true,
    };
  }

  step(
    `pmb ${manifest.version} did not become healthy within ${Math.round(timeout / 1000)} s (${problem}): rolling back`,
  );
  await restorePrevious(target);
  const after = await restartInto(opts.currentVersion);
  const kept = backup ? ` The backup taken before the upgrade is ${backup}.` : '';
  if (after !== undefined) {
    throw new ApplianceError(
      'rollback_failed',
      `pmb ${manifest.version} failed its health check (${problem}); pmb ${opts.currentVersion} was put back at ` +
        `${target} but is not healthy either (${after}). Check the service log (journalctl -u pmb).${kept}`,
    );
  }
  throw new ApplianceError(
    'rolled_back',
    `pmb ${manifest.version} failed its health check (${problem}), so pmb ${opts.currentVersion} was put back ` +
      `and is running again.${kept}`,
  );
}

function withTimeout(signal: AbortSignal | undefined, ms: number): AbortSignal {
  return AbortSignal.any([...(signal ? [signal] : []), AbortSignal.timeout(ms)]);
}
