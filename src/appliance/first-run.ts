import { createHash, randomInt, timingSafeEqual } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes, toHex, utf8 } from '../protocol/bytes.js';
import { DOMAIN_RE, NICKNAME_RE } from '../protocol/schemas.js';
import type { RegistrationPolicy } from '../server/config.js';
import { DomainLockedError, lockDomain, registeredDomain } from '../server/domain-lock.js';
import type { Store } from '../store/index.js';
import { REGISTRATION_POLICIES } from './config.js';
import { updateDataDirConfig } from './config-file.js';
import { reachableHosts } from './lan.js';

/**
 * The one-time setup token, kept in the data dir (0600) while setup is pending and deleted once spent.
 * It is stored as is, like admin-token beside it: whoever can read the data dir administers the server
 * anyway, and a readable token can be shown again (`pmb init --show-token`, every start until setup).
 */
export const SETUP_TOKEN_FILE = 'setup-token';
const DONE_KEY = 'setup.completed';
const ADMIN_KEY = 'setup.admin';
/** How long the first account's invite stays valid. */
export const ADMIN_INVITE_TTL_MS = 7 * 24 * 3600_000;

/** Crockford's base32 without look-alikes: easy to read off one screen and type on another. */
const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

export type SetupErrorCode = 'setup_done' | 'bad_token' | 'domain_locked' | 'bad_request';

export class SetupError extends Error {
  override readonly name = 'SetupError';
  constructor(
    readonly code: SetupErrorCode,
    message: string,
    /** For bad_request: the answer at fault (domain, registration, admin). */
    readonly field?: keyof SetupAnswers,
  ) {
    super(message);
  }

  get status(): 400 | 403 | 409 {
    return this.code === 'bad_token' ? 403 : this.code === 'bad_request' ? 400 : 409;
  }
}

export interface SetupAnswers {
  domain: string;
  registration: RegistrationPolicy;
  /** Nickname of the first (admin) account. */
  admin: string;
}

export interface SetupResult extends SetupAnswers {
  invite: { code: string; expires: number };
  /** The file the domain and registration policy were saved to. */
  configFile: string;
}

/** Setup is done once it was completed, or on a server that already has accounts (made before setup existed). */
export function setupDone(store: Store): boolean {
  return store.meta.get(DONE_KEY) !== undefined || store.accounts.count() > 0;
}

/** 16 characters in groups of four (80 bits), e.g. K7QF-3MZD-9XWA-PL2C. */
export function newSetupToken(): string {
  const chars = Array.from({ length: 16 }, () => ALPHABET[randomInt(ALPHABET.length)]).join('');
  return chars.match(/.{4}/g)!.join('-');
}

function normalizeToken(t: string): string {
  return t.toUpperCase().replace(/[\s-]+/g, '');
}

export async function readSetupToken(dataDir: string): Promise<string | undefined> {
  try {
    return (await readFile(join(dataDir, SETUP_TOKEN_FILE), 'utf8')).trim() || undefined;
  } catch {
    return undefined;
  }
}

/**
 * On a data dir that was never set up: the setup token (made on the very first start). Undefined once
 * setup is done (a leftover token file is removed then).
 */
export async function prepareFirstRun(store: Store, dataDir: string): Promise<string | undefined> {
  if (setupDone(store)) {
    await rm(join(dataDir, SETUP_TOKEN_FILE), { force: true });
    return undefined;
  }
  const existing = await readSetupToken(dataDir);
  if (existing) return existing;
  const token = newSetupToken();
  await writeFile(join(dataDir, SETUP_TOKEN_FILE), `${token}\n`, { mode: 0o600 });
  return token;
}

/** Constant-time check of a presented token against the data dir's. */
export async function checkSetupToken(dataDir: string, given: unknown): Promise<void> {
  const token = await readSetupToken(dataDir);
  if (!token) throw new SetupError('setup_done', 'Setup is already done: make invites with pmb invite');
  const digest = (s: string) => createHash('sha256').update(normalizeToken(s)).digest();
  if (typeof given !== 'string' || !timingSafeEqual(digest(given), digest(token))) {
    throw new SetupError(
      'bad_token',
      'Wrong setup token: pmb serve printed it at its first start (or run pmb init --show-token on the box)',
    );
  }
}

/** Validates what a setup form or `pmb init` sent. */
export function checkAnswers(raw: {
  domain?: unknown;
  registration?: unknown;
  admin?: unknown;
}): SetupAnswers {
  const domain = typeof raw.domain === 'string' ? raw.domain.trim().toLowerCase() : '';
  if (!DOMAIN_RE.test(domain)) {
    throw new SetupError(
      'bad_request',
      `"${String(raw.domain ?? '')}" is not a domain name (like home.example.org)`,
      'domain',
    );
  }
  const registration = typeof raw.registration === 'string' ? raw.registration.trim().toLowerCase() : '';
  if (!REGISTRATION_POLICIES.includes(registration as RegistrationPolicy)) {
    throw new SetupError(
      'bad_request',
      `"${String(raw.registration ?? '')}" is not one of ${REGISTRATION_POLICIES.join(', ')}`,
      'registration',
    );
  }
  const admin = typeof raw.admin === 'string' ? raw.admin.trim().toLowerCase() : '';
  if (!NICKNAME_RE.test(admin)) {
    throw new SetupError(
      'bad_request',
      `"${String(raw.admin ?? '')}" is not a nickname (2-32 of a-z, 0-9, ".", "_", "-", starting with a letter or digit)`,
      'admin',
    );
  }
  return { domain, registration: registration as RegistrationPolicy, admin };
}

export interface SetupDeps {
  store: Store;
  dataDir: string;
  now: () => number;
  /** The running server's settings, updated in place so the new domain and policy apply at once. */
  live?: { domain: string; registration: RegistrationPolicy };
}

/**
 * Finishes setup: saves domain and registration policy to `<dataDir>/pmb.toml` (so flags and PMB_* still
 * win over them), makes the first account's invite, marks setup done and spends the token.
 */
export async function completeSetup(deps: SetupDeps, answers: SetupAnswers): Promise<SetupResult> {
  const { store, dataDir } = deps;
  if (store.meta.get(DONE_KEY) !== undefined) {
    throw new SetupError('setup_done', 'Setup is already done: make invites with pmb invite');
  }
  const before = registeredDomain(store);
  if (before !== undefined && before !== answers.domain && store.accounts.count() > 0) {
    throw new SetupError('domain_locked', new DomainLockedError(before, answers.domain).message);
  }
  const configFile = await updateDataDirConfig(dataDir, {
    domain: answers.domain,
    registration: answers.registration,
  });
  const now = deps.now();
  const invite = { code: toHex(randomBytes(12)), expires: now + ADMIN_INVITE_TTL_MS };
  await store.writes.submit(() => {
    if (store.meta.get(DONE_KEY) !== undefined) {
      throw new SetupError('setup_done', 'Setup is already done: make invites with pmb invite');
    }
    lockDomain(store, answers.domain);
    store.accounts.addInvite(invite.code, now, invite.expires);
    store.meta.set(ADMIN_KEY, utf8(answers.admin));
    store.meta.set(DONE_KEY, utf8(String(now)));
  });
  if (deps.live) {
    deps.live.domain = answers.domain;
    deps.live.registration = answers.registration;
  }
  await rm(join(dataDir, SETUP_TOKEN_FILE), { force: true });
  return { ...answers, invite, configFile };
}

/** Where someone on the home network opens the setup page. */
export function setupUrls(opts: {
  host: string;
  port: number;
  tls: boolean;
  publicUrl?: string | undefined;
}) {
  if (opts.publicUrl) {
    const u = new URL(opts.publicUrl);
    u.protocol = u.protocol === 'wss:' ? 'https:' : 'http:';
    return [`${u.origin}/setup`];
  }
  const scheme = opts.tls ? 'https' : 'http';
  return reachableHosts(opts.host).map((h) => `${scheme}://${h}:${opts.port}/setup`);
}

/** The command the admin runs to take the first account. */
export function registerCommand(nick: string, domain: string, serverUrl: string, invite: string): string {
  return `pmb register ${nick}@${domain} --server ${serverUrl} --invite ${invite}`;
}
