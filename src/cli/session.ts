import WebSocket from 'ws';
import {
  connectFirstReachable,
  followAccount,
  isFingerprint,
  type LoginResult,
  newMessageId,
  type PmbClient,
  type ReceivedMessage,
  type SeenStore,
  type WebSocketFactory,
} from '../client/index.js';
import { decodeRecord, generateIdentity, type Identity } from '../crypto/index.js';
import { PmbError } from '../protocol/errors.js';
import type { SignedRecord } from '../protocol/records.js';
import { type CliContext, note } from './context.js';
import { CliError } from './errors.js';
import { History, type HistoryEntry } from './history.js';
import { loadIdentity, readPassphrase } from './identity.js';
import { type Profile, shortFingerprint } from './profile.js';
import { normalizeServerUrl } from './urls.js';
import { VERSION } from './version.js';

/** Time to open the WebSocket: a host that drops packets must not hang the command. */
const CONNECT_TIMEOUT_MS = 10_000;
/** Time to get the last acks out before closing. */
const FLUSH_TIMEOUT_MS = 5_000;

class CliWebSocket extends WebSocket {
  constructor(url: string, protocols?: string | string[]) {
    super(url, protocols, { handshakeTimeout: CONNECT_TIMEOUT_MS, maxPayload: 1024 * 1024 });
  }
}

/** What every CLI connection passes to the SDK. */
function clientOptions(identity: Identity, device: string, seen: SeenStore) {
  return {
    WebSocket: CliWebSocket as unknown as WebSocketFactory,
    identity,
    device,
    agent: `pmb-cli/${VERSION}`,
    seen,
  };
}

/** A connection or login failure, said in the CLI's words. */
function explain(err: unknown, url: string): unknown {
  if (!(err instanceof PmbError)) return err;
  if (err.code === 'unknown_account') {
    return new PmbError(
      'unknown_account',
      `${url} does not know this identity: register first (pmb register NICK@DOMAIN --server ${url})`,
    );
  }
  if (err.code === 'wrong_server') {
    return new PmbError(
      'wrong_server',
      `${err.message}. Someone may be impersonating your server; if its key really changed (reinstalled), run: pmb login --server ${url} --accept-server-key`,
    );
  }
  if (err.code === 'unavailable') {
    return new PmbError(
      'unavailable',
      `Cannot reach a PMB server at ${url} (is it running? is the address right?)`,
    );
  }
  return err;
}

export interface SessionOptions {
  profile: Profile;
  passphraseFile?: string;
  /** Server URL; default: the one saved in the profile. */
  server?: string;
  /** Log in (deliveries start); without it the connection only looks things up. */
  login: boolean;
  /** Lookups need no account: a profile without a key gets a throwaway one for this connection. */
  anonymous?: boolean;
  /** Do not insist on the pinned server key (pmb login --accept-server-key). */
  acceptServerKey?: boolean;
  /** A new (not yet in history) message arrived and was stored. */
  onMessage?: (entry: HistoryEntry) => void;
}

/**
 * A connection to the profile's server, as the profile's identity. Every delivery is decrypted and stored
 * in the local history before it is acknowledged, so no command can swallow mail: what a command does not
 * show stays unread for `pmb inbox`.
 */
export class Session {
  #client: PmbClient;
  readonly identity: Identity;
  readonly profile: Profile;
  readonly history: History;
  #url: string;
  /** Resolves when the server closes the connection or close() was called. */
  readonly closed: Promise<void>;
  #closedResolve: () => void = () => {};
  /** The profile's server; when the session is elsewhere (a backup), logging in moves the account. */
  #primary: string;
  #move = false;
  readonly #ctx: CliContext;
  onMessage: ((entry: HistoryEntry) => void) | undefined;
  /** Ids this process is sending right now: their echo to our own mailbox is not news. */
  readonly sending = new Set<string>();
  #learned = new Map<string, string>();
  #closing = false;
  #lost = false;

  private constructor(
    ctx: CliContext,
    client: PmbClient,
    identity: Identity,
    profile: Profile,
    history: History,
    url: string,
  ) {
    this.#ctx = ctx;
    this.#client = client;
    this.identity = identity;
    this.profile = profile;
    this.history = history;
    this.#url = url;
    this.#primary = url;
    this.closed = new Promise<void>((resolve) => {
      this.#closedResolve = resolve;
    });
    this.#wire(client);
  }

  get client(): PmbClient {
    return this.#client;
  }

  get url(): string {
    return this.#url;
  }

  #wire(client: PmbClient): void {
    client.events.close = () => {
      if (client !== this.#client) return;
      if (!this.#closing) this.#lost = true;
      this.#closedResolve();
    };
    client.events.message = (m) => this.#store(m);
    client.events.rejected = (env, err) =>
      note(
        this.#ctx,
        `pmb: dropped a message from ${shortFingerprint(env.from)} that failed to verify: ${err.message}`,
      );
  }

  static async open(ctx: CliContext, opts: SessionOptions): Promise<Session> {
    const { profile } = opts;
    const identity =
      opts.anonymous && (await profile.readSecretKey()) === undefined
        ? (await generateIdentity()).identity
        : await loadIdentity(profile, await readPassphrase(opts, ctx.env));
    const saved = profile.data.server;
    if (!opts.server && !saved) {
      throw new CliError(
        'not_logged_in',
        `This profile has no server yet: run "pmb register NICK@DOMAIN --server URL" or "pmb login --server URL"`,
      );
    }
    const url = normalizeServerUrl(opts.server ?? (saved as string));
    const history = await History.load(profile.historyFile);
    // The pin belongs to the saved server URL; a server named explicitly for the first time is trusted on first use.
    const pinned =
      !opts.acceptServerKey && url === profile.data.server ? profile.data.serverFingerprint : undefined;
    const device = opts.anonymous ? 'lookup' : await profile.device();
    // The profile's server, else its backups in order; a server named with --server only.
    const backups = opts.server
      ? []
      : profile.data.backupServers.map((u) => normalizeServerUrl(u)).filter((u) => u !== url);
    let reached: { client: PmbClient; url: string; index: number };
    try {
      reached = await connectFirstReachable({
        ...clientOptions(identity, device, history.seenStore()),
        urls: [url, ...backups],
        ...(pinned ? { expectServer: pinned } : {}),
        onSkip: (u, err) => {
          if (backups.length > 0)
            note(ctx, `pmb: ${u} cannot be reached (${err.message}); trying the next server`);
        },
      });
    } catch (err) {
      throw explain(err, url);
    }
    const session = new Session(ctx, reached.client, identity, profile, history, reached.url);
    session.#primary = url;
    // Logging in on a backup, or on a server named with --server, makes it the account's home.
    session.#move = reached.index > 0 || !!opts.server;
    session.onMessage = opts.onMessage;
    if (opts.login) {
      try {
        await session.login();
      } catch (err) {
        session.client.close();
        throw err;
      }
    }
    return session;
  }

  get lost(): boolean {
    return this.#lost;
  }

  /**
   * Log in. On a backup server (the profile's server was unreachable) or one named with --server this is a
   * move: a new location record makes it the account's home. When the server says the account lives
   * elsewhere now (another device moved it), the session follows it there. Either way the profile then
   * names the account's new server, keeping the old one as a backup.
   */
  async login(): Promise<LoginResult> {
    let res: LoginResult;
    let followed = false;
    try {
      res = await this.#client.login({ move: this.#move });
      if (res.location !== this.#client.server.domain) {
        const old = this.#client;
        const home = await followAccount(
          old,
          res,
          clientOptions(this.identity, old.device, this.history.seenStore()),
          (c) => {
            this.#client = c;
            this.#wire(c);
          },
        );
        old.close();
        this.#url = home.url;
        res = home.login;
        followed = true;
        note(this.#ctx, `pmb: your account lives on ${home.url} now; this profile follows it there`);
      }
    } catch (err) {
      throw explain(err, this.#url);
    }
    if (this.#url !== this.#primary) {
      const here = this.#url;
      const fp = this.#client.server.fingerprint;
      if (!followed)
        note(this.#ctx, `pmb: your account now lives on ${here} (${this.#primary} was unreachable)`);
      await this.profile.update((d) => {
        const old = d.server;
        d.server = here;
        d.serverFingerprint = fp;
        d.backupServers = [
          ...d.backupServers.filter((u) => normalizeServerUrl(u) !== here),
          ...(old && normalizeServerUrl(old) !== here && !d.backupServers.includes(old) ? [old] : []),
        ];
      });
      this.#primary = here;
    }
    return res;
  }

  /** Until everything stored for this device before login has been received; fails if the link drops. */
  async synced(): Promise<void> {
    await Promise.race([
      this.client.waitSynced(),
      this.closed.then(() => {
        throw new PmbError('unavailable', `The connection to ${this.url} was lost`);
      }),
    ]);
  }

  /**
   * Who `who` is: a roster entry (pinned fingerprint: the server cannot swap the key behind a saved
   * contact), a fingerprint, or nick@domain resolved through the server with its bindings checked.
   */
  async resolve(who: string): Promise<{ fingerprint: string; address: string | undefined }> {
    const contact = this.profile.findContact(who);
    if (contact) return { fingerprint: contact.fingerprint, address: contact.address };
    const q = who.trim().toLowerCase();
    if (!isFingerprint(q) && !q.includes('@')) {
      throw new CliError('usage', `"${who}" is not nick@domain, a fingerprint, or a name in your roster`, 2);
    }
    const found = await this.client.lookup(q);
    const address = q.includes('@') ? q : found.addresses[0];
    if (address) this.learn(found.fingerprint, address);
    return { fingerprint: found.fingerprint, address: address ?? this.profile.addressOf(found.fingerprint) };
  }

  /** nick@domain of a fingerprint: from the profile, else from the server (best effort). */
  async addressOf(fingerprint: string): Promise<string | undefined> {
    const local = this.profile.addressOf(fingerprint) ?? this.#learned.get(fingerprint);
    if (local) return local;
    try {
      const address = (await this.client.lookup(fingerprint)).addresses[0];
      if (address) this.learn(fingerprint, address);
      return address;
    } catch {
      return undefined;
    }
  }

  learn(fingerprint: string, address: string): void {
    if (this.profile.data.known[fingerprint] !== address) this.#learned.set(fingerprint, address);
  }

  /** Send and record in history once the server has it on disk. */
  async send(
    to: string,
    toAddress: string | undefined,
    text: string,
  ): Promise<{ entry: HistoryEntry; duplicate: boolean }> {
    const id = newMessageId();
    this.sending.add(id);
    try {
      const res = await this.client.send(to, text, { id });
      const entry: HistoryEntry = {
        id,
        from: this.identity.fingerprint,
        fromAddress: this.profile.data.address,
        to: [to],
        toAddress,
        text,
        kind: 'msg',
        ts: res.ts,
        received: res.ts,
        outgoing: true,
        stored: Date.now(),
      };
      this.history.add(entry);
      return { entry, duplicate: res.duplicate };
    } finally {
      this.sending.delete(id);
    }
  }

  /** Ack what was handled, write history and learned addresses, close. Safe to call twice. */
  async close(): Promise<void> {
    if (!this.#closing) {
      this.#closing = true;
      if (!this.client.conn.closed) {
        // flushAcks waits for handled deliveries; bound it so a dying link cannot hang the command.
        await Promise.race([
          this.client.flushAcks(),
          this.closed,
          new Promise((r) => setTimeout(r, FLUSH_TIMEOUT_MS).unref()),
        ]);
      }
      this.client.close();
    }
    await this.history.flush();
    if (this.#learned.size > 0) {
      const learned = [...this.#learned];
      this.#learned.clear();
      await this.profile.update((d) => {
        for (const [fp, address] of learned) d.known[fp] = address;
      });
    }
  }

  async #store(m: ReceivedMessage): Promise<void> {
    if (this.history.has(m.from, m.id)) return;
    const to0 = m.to.find((t) => t !== this.identity.fingerprint) ?? m.to[0];
    const entry: HistoryEntry = {
      id: m.id,
      from: m.from,
      fromAddress: await this.addressOf(m.from),
      to: m.to,
      toAddress: to0 ? await this.addressOf(to0) : undefined,
      text: m.text ?? '',
      kind: m.kind,
      ts: m.ts,
      received: m.received,
      outgoing: m.outgoing,
      stored: Date.now(),
    };
    if (!this.history.add(entry)) return;
    if (m.outgoing && this.sending.has(m.id)) return;
    this.onMessage?.(entry);
  }
}

export async function withSession<T>(
  ctx: CliContext,
  opts: SessionOptions,
  fn: (s: Session) => Promise<T>,
): Promise<T> {
  const session = await Session.open(ctx, opts);
  try {
    return await fn(session);
  } finally {
    await session.close();
  }
}

/** The newest unexpired nickname binding of our own key, as nick@domain. */
export function addressFrom(bindings: SignedRecord[], fingerprint: string): string | undefined {
  let best: { seq: number; address: string } | undefined;
  for (const b of bindings) {
    try {
      const p = decodeRecord(b);
      const { nick, domain } = p.body as { nick?: unknown; domain?: unknown };
      if (p.subject !== fingerprint || typeof nick !== 'string' || typeof domain !== 'string') continue;
      if (p.expires !== undefined && p.expires < Date.now()) continue;
      if (!best || p.seq > best.seq) best = { seq: p.seq, address: `${nick}@${domain}` };
    } catch {
      // A record we cannot read names nobody.
    }
  }
  return best?.address;
}
