import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { CliError } from './errors.js';
import { ensureDir, isNotFound, writeFileAtomic } from './files.js';

export const DEFAULT_GROUP = 'Contacts';

const rosterEntry = z.looseObject({
  fingerprint: z.string(),
  address: z.string().optional(),
  name: z.string().optional(),
  group: z.string().default(DEFAULT_GROUP),
  added: z.number().optional(),
});
export type RosterEntry = z.infer<typeof rosterEntry>;

const chatSettings = z.looseObject({
  /** Local store time (ms) up to which incoming messages of this chat have been shown. */
  readUpTo: z.number().optional(),
});
export type ChatSettings = z.infer<typeof chatSettings>;

/** profile.json: everything of the profile except the key and the message history. Unknown keys are kept. */
const profileData = z.looseObject({
  v: z.literal(1).default(1),
  /** Fingerprint of identity.asc, kept here so offline commands need not unlock the key. */
  fingerprint: z.string().optional(),
  /** This device's id within the account. */
  device: z.string().optional(),
  /** Login: nick@domain. */
  address: z.string().optional(),
  /** WebSocket URL of the server this account uses. */
  server: z.string().optional(),
  backupServers: z.array(z.string()).default([]),
  roster: z.array(rosterEntry).default([]),
  chats: z.record(z.string(), chatSettings).default({}),
  /** fingerprint -> nick@domain learned from lookups, for display. */
  known: z.record(z.string(), z.string()).default({}),
});
export type ProfileData = z.infer<typeof profileData>;

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
    const p = new Profile(dir, profileData.parse({}));
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
    const parsed = profileData.safeParse(raw);
    if (!parsed.success) {
      throw new CliError('bad_profile', `${this.dataFile} is malformed: ${parsed.error.issues[0]?.message}`);
    }
    this.data = parsed.data;
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
