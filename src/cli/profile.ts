import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CliError } from './errors.js';
import { ensureDir, isNotFound, writeFileAtomic } from './files.js';

export const DEFAULT_GROUP = 'Contacts';

export interface RosterEntry {
  fingerprint: string;
  address?: string;
  name?: string;
  group: string;
  added?: number;
}

export interface ChatSettings {
  /** Local store time (ms) up to which incoming messages of this chat have been shown. */
  readUpTo?: number;
}

/** profile.json: everything of the profile except the key and the message history. Unknown keys are kept. */
export interface ProfileData {
  v: 1;
  /** Fingerprint of identity.asc, kept here so offline commands need not unlock the key. */
  fingerprint?: string | undefined;
  /** This device's id within the account. */
  device?: string | undefined;
  /** Login: nick@domain. */
  address?: string | undefined;
  /** WebSocket URL of the server this account uses. */
  server?: string | undefined;
  /** That server's key fingerprint, pinned at register/login: another key at that URL is refused. */
  serverFingerprint?: string | undefined;
  backupServers: string[];
  roster: RosterEntry[];
  chats: Record<string, ChatSettings>;
  /** fingerprint -> nick@domain learned from lookups, for display. */
  known: Record<string, string>;
}

/**
 * Checked by hand rather than with zod: local commands (roster, chats) then start without loading a
 * schema library, which is most of their start-up time.
 */
function parseProfileData(raw: unknown): ProfileData | string {
  if (!isObject(raw)) return 'not a JSON object';
  if (raw.v !== undefined && raw.v !== 1) return `unknown version ${String(raw.v)}`;
  for (const k of ['fingerprint', 'device', 'address', 'server', 'serverFingerprint'] as const) {
    if (raw[k] !== undefined && typeof raw[k] !== 'string') return `${k} must be a string`;
  }
  const backupServers = raw.backupServers ?? [];
  if (!Array.isArray(backupServers) || !backupServers.every((x) => typeof x === 'string')) {
    return 'backupServers must be a list of URLs';
  }
  const roster = raw.roster ?? [];
  if (!Array.isArray(roster)) return 'roster must be a list';
  for (const c of roster) {
    if (!isObject(c) || typeof c.fingerprint !== 'string') return 'every roster entry needs a fingerprint';
    for (const k of ['address', 'name', 'group'] as const) {
      if (c[k] !== undefined && typeof c[k] !== 'string') return `roster ${k} must be a string`;
    }
    c.group ??= DEFAULT_GROUP;
  }
  const chats = raw.chats ?? {};
  if (!isObject(chats) || !Object.values(chats).every(isObject))
    return 'chats must map fingerprints to settings';
  const known = raw.known ?? {};
  if (!isObject(known) || !Object.values(known).every((x) => typeof x === 'string')) {
    return 'known must map fingerprints to addresses';
  }
  return { ...raw, v: 1, backupServers, roster, chats, known } as ProfileData;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function newDeviceId(): string {
  return randomBytes(6).toString('hex');
}

/**
 * The client profile directory (0700): identity.asc (0600), profile.json, history.jsonl. Updates re-read
 * the file first, so two pmb processes on one profile (a chat and a roster edit) do not undo each other.
 */
export class Profile {
  readonly dir: string;
  data: ProfileData;

  private constructor(dir: string, data: ProfileData) {
    this.dir = dir;
    this.data = data;
  }

  get identityFile(): string {
    return join(this.dir, 'identity.asc');
  }

  get historyFile(): string {
    return join(this.dir, 'history.jsonl');
  }

  get dataFile(): string {
    return join(this.dir, 'profile.json');
  }

  static async open(dir: string): Promise<Profile> {
    const p = new Profile(dir, parseProfileData({}) as ProfileData);
    await p.reload();
    return p;
  }

  async reload(): Promise<ProfileData> {
    let text: string;
    try {
      text = await readFile(this.dataFile, 'utf8');
    } catch (err) {
      if (isNotFound(err)) return this.data;
      throw err;
    }
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch {
      throw new CliError('bad_profile', `${this.dataFile} is not valid JSON; fix or remove it`);
    }
    const parsed = parseProfileData(raw);
    if (typeof parsed === 'string')
      throw new CliError('bad_profile', `${this.dataFile} is malformed: ${parsed}`);
    this.data = parsed;
    return this.data;
  }

  /** Read, change, write atomically. */
  async update(change: (data: ProfileData) => void): Promise<ProfileData> {
    await this.reload();
    change(this.data);
    await ensureDir(this.dir);
    await writeFileAtomic(this.dataFile, `${JSON.stringify(this.data, null, 2)}\n`);
    return this.data;
  }

  async device(): Promise<string> {
    if (this.data.device) return this.data.device;
    const data = await this.update((d) => {
      d.device ??= newDeviceId();
    });
    return data.device as string;
  }

  async readSecretKey(): Promise<string | undefined> {
    try {
      return await readFile(this.identityFile, 'utf8');
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async writeSecretKey(armored: string): Promise<void> {
    await ensureDir(this.dir);
    await writeFileAtomic(this.identityFile, armored, 0o600);
  }

  /** A roster entry by address, fingerprint or name (case-insensitive). */
  findContact(who: string): RosterEntry | undefined {
    const q = who.trim().toLowerCase();
    return (
      this.data.roster.find((c) => c.fingerprint === q || c.address?.toLowerCase() === q) ??
      this.data.roster.find((c) => c.name?.toLowerCase() === q)
    );
  }

  /** nick@domain of a fingerprint, if the profile knows one. */
  addressOf(fingerprint: string): string | undefined {
    if (fingerprint === this.data.fingerprint && this.data.address) return this.data.address;
    return (
      this.data.roster.find((c) => c.fingerprint === fingerprint)?.address ?? this.data.known[fingerprint]
    );
  }

  /** What to call someone: roster name, else nick@domain, else a short fingerprint. */
  nameOf(fingerprint: string, fallbackAddress?: string): string {
    const c = this.data.roster.find((r) => r.fingerprint === fingerprint);
    return (
      c?.name ?? c?.address ?? this.addressOf(fingerprint) ?? fallbackAddress ?? shortFingerprint(fingerprint)
    );
  }
}

export function shortFingerprint(fp: string): string {
  return `${fp.slice(0, 16)}…`;
}

export function noIdentity(profile: Profile): CliError {
  return new CliError(
    'no_identity',
    `No identity in ${profile.dir} yet: run "pmb register NICK@DOMAIN --server URL", "pmb id new" or "pmb id import FILE"`,
  );
}
