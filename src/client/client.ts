import {
  challengeAnswer,
  createRecord,
  decodeRecord,
  type Identity,
  type MessageContent,
  openMessage,
  type PublicIdentity,
  readChallenge,
  readPublicIdentity,
  recordHash,
  sealMessage,
  verifyRecord,
} from '../crypto/index.js';
import { randomBytes, toHex } from '../protocol/bytes.js';
import { PmbError } from '../protocol/errors.js';
import {
  Ack,
  type DeliverFrame,
  type Envelope,
  LoginFinish,
  LoginStart,
  Lookup,
  Ping,
  Publish,
  Register,
  type ResultOf,
  Send,
} from '../protocol/frames.js';
import { BINDING_TTL_MS, bindingBody, type SignedRecord, serverBody } from '../protocol/records.js';
import { fingerprint as fingerprintSchema, parseAddress } from '../protocol/schemas.js';
import { Connection, type ConnectOptions } from './connection.js';

export interface ClientOptions extends ConnectOptions {
  identity: Identity;
  /** This device's id within the account. */
  device: string;
  /** Fingerprint the server must have (pinned at first contact); a different key is refused. */
  expectServer?: string;
  now?: () => number;
  /**
   * What this device has already shown, by `${from}/${id}`: a message pushed again (after a crash, or to
   * a new PmbClient after a restart) is acknowledged but not shown again. Default: a bounded in-memory
   * set, which remembers for this PmbClient only; an app that keeps messages passes one backed by its store.
   */
  seen?: SeenStore;
}

/**
 * The (sender, id) pairs this device has shown. A message is added after the app's `message` handler
 * succeeded and before it is acknowledged; a failing store is a passing failure (the delivery comes again).
 */
export interface SeenStore {
  has(key: string): boolean | Promise<boolean>;
  add(key: string): void | Promise<void>;
}

/** The default seen-store: the most recent (at most `max`) keys, in memory. */
export class MemorySeenStore implements SeenStore {
  readonly #keys = new Set<string>();
  constructor(private readonly max = 10_000) {}

  has(key: string): boolean {
    return this.#keys.has(key);
  }

  add(key: string): void {
    this.#keys.add(key);
    if (this.#keys.size > this.max) {
      // Forget the oldest half at once (a Set iterates in insertion order).
      for (const k of this.#keys) {
        this.#keys.delete(k);
        if (this.#keys.size <= this.max / 2) break;
      }
    }
  }
}

/**
 * Handled deliveries after which another ack goes out although the previous one is not answered yet: the
 * server answers an ack once the cursor is on disk (up to ~100 ms when idle), and the window it frees must
 * not wait for that. Below any sensible deliveryWindow (default 256).
 */
const ACK_EVERY = 32;

/** A message as the user sees it: decrypted, signature verified, recipient checked. */
export interface ReceivedMessage {
  id: string;
  from: string;
  to: string[];
  /** Sender's clock. */
  ts: number;
  /** Server receipt time. */
  received: number;
  seq: number;
  kind: string;
  text: string | undefined;
  /** Sent by this account (from another device, or this one). */
  outgoing: boolean;
  content: MessageContent;
}

export interface Contact {
  fingerprint: string;
  key: PublicIdentity;
  /** nick@domain names whose bindings verified against the key. */
  addresses: string[];
  /** Domain of the server hosting the identity now (its newest location record, else its registrar). */
  server: string;
  /** WebSocket endpoint of that server, when its server record came with the answer. */
  endpoint?: string;
  records: SignedRecord[];
}

export interface ClientEvents {
  message?: (m: ReceivedMessage) => void | Promise<void>;
  /** A delivered envelope that failed decryption or verification; it is acknowledged and dropped. */
  rejected?: (envelope: Envelope, err: PmbError) => void;
  synced?: () => void;
  close?: (code: number, reason: string) => void;
  /**
   * A delivery could not be handled for a passing reason (the sender's key could not be fetched, or the
   * `message` handler or the seen-store threw): it is not acknowledged, the connection is closed, and the server pushes it
   * again at the next login.
   */
  halted?: (err: PmbError) => void;
}

/**
 * The client SDK: everything a PMB client does (CLI, browser extension, benchmarks, tests). It never
 * sends plaintext or a private key anywhere; servers see envelopes and OpenPGP bodies only.
 */
export class PmbClient {
  readonly conn: Connection;
  readonly identity: Identity;
  readonly device: string;
  readonly events: ClientEvents = {};
  readonly #now: () => number;
  readonly #contacts = new Map<string, Contact>();
  /** Handled (sender, id) pairs: a redelivered message is acknowledged but not shown again. */
  readonly #seen: SeenStore;
  #serverKey: PublicIdentity | undefined;
  #chain: Promise<void> = Promise.resolve();
  /** Highest seq whose ack the server answered (its cursor is on disk), sent, and handled. */
  #ackSent = 0;
  #ackRequested = 0;
  #ackWanted = 0;
  #acksInFlight = 0;
  /** Deliveries handled since the last ack went out. */
  #handledSinceAck = 0;
  #synced = false;
  /** A delivery could not be handled: nothing more is acknowledged on this connection. */
  #halted = false;
  #syncWaiters: { resolve: () => void; reject: (e: PmbError) => void }[] = [];

  private constructor(conn: Connection, opts: ClientOptions) {
    this.conn = conn;
    this.identity = opts.identity;
    this.device = opts.device;
    this.#now = opts.now ?? Date.now;
    this.#seen = opts.seen ?? new MemorySeenStore();
    conn.events.deliver = (f) => this.#enqueue(f);
    conn.events.synced = () => {
      // Synced is reported after every delivery pushed before it has been handled.
      this.#chain = this.#chain.then(() => {
        this.#synced = true;
        for (const w of this.#syncWaiters.splice(0)) w.resolve();
        this.events.synced?.();
      });
    };
    conn.events.close = (code, reason) => {
      const err = new PmbError('unavailable', 'The connection closed before the mailbox was synced');
      for (const w of this.#syncWaiters.splice(0)) w.reject(err);
      this.events.close?.(code, reason);
    };
  }

  static async connect(opts: ClientOptions): Promise<PmbClient> {
    const conn = await Connection.open(opts);
    const server = conn.hello?.server;
    if (opts.expectServer && server?.fingerprint !== opts.expectServer) {
      conn.close(1008, 'wrong server');
      throw new PmbError(
        'wrong_server',
        `The server at ${opts.url} presents key ${server?.fingerprint}, not the pinned ${opts.expectServer}`,
      );
    }
    return new PmbClient(conn, opts);
  }

  get server(): NonNullable<Connection['hello']>['server'] {
    return this.conn.hello!.server;
  }

  /** Register nick@<this server's domain> for this identity. */
  async register(nick: string, opts: { invite?: string } = {}): Promise<SignedRecord> {
    const server = this.server;
    const binding = await createRecord(this.identity, {
      kind: 'binding',
      subject: this.identity.fingerprint,
      seq: 1,
      prev: null,
      ts: this.#now(),
      expires: this.#now() + BINDING_TTL_MS,
      body: { nick: nick.toLowerCase(), domain: server.domain, registrar: server.fingerprint },
    });
    const res = await this.conn.request(Register, {
      binding,
      publicKey: this.identity.publicKeyBytes,
      ...(opts.invite ? { invite: opts.invite } : {}),
    });
    return res.binding;
  }

  /**
   * Log in by answering the challenge encrypted to our key; the backlog starts arriving after this. The
   * answer's `location` says which server hosts the account now: when it is not this one, `move: true`
   * makes this server the home (a location record); otherwise the caller should go to that server.
   */
  async login(opts: { move?: boolean; invite?: string } = {}): Promise<ResultOf<typeof LoginFinish>> {
    const { challenge, expires } = await this.conn.request(LoginStart, {
      fingerprint: this.identity.fingerprint,
      device: this.device,
      ...(opts.invite ? { invite: opts.invite } : {}),
    });
    const secret = await readChallenge(this.identity, challenge);
    const answer = await challengeAnswer({
      secret,
      server: this.server.fingerprint,
      connection: this.conn.hello!.connection,
      expires,
    });
    const res = await this.conn.request(LoginFinish, { answer });
    if (opts.move && res.location !== this.server.domain) {
      await this.moveHere();
      return { ...res, location: this.server.domain };
    }
    return res;
  }

  /** Resolve nick@domain or a fingerprint; bindings are checked against the key before they are believed. */
  async lookup(query: string): Promise<Contact> {
    const q = query.trim().toLowerCase();
    const cached = this.#contacts.get(q);
    if (cached) return cached;
    const res = await this.conn.request(Lookup, { query: q });
    const key = await readPublicIdentity(res.publicKey);
    if (key.fingerprint !== res.fingerprint)
      throw new PmbError('bad_key', 'The server returned a key with another fingerprint');
    // A fingerprint names its key: another key in the answer would let a server pass messages signed by
    // that key off as the fingerprint's (protocol.md 8.4, step 2).
    if (isFingerprint(q) && key.fingerprint !== q)
      throw new PmbError('bad_key', `The server answered ${q} with the key of ${key.fingerprint}`);
    const servers = await this.#serverRecords(res.servers);
    const addresses: string[] = [];
    for (const record of res.records) {
      const payload = decodeRecord(record);
      if (payload.kind !== 'binding') continue;
      const body = bindingBody.safeParse(payload.body);
      if (!body.success) continue;
      try {
        // A name is believed only when both the key and the name's registrar signed it.
        const registrar = this.#registrar(body.data.registrar, body.data.domain, servers);
        if (!registrar) continue;
        await verifyRecord(
          record,
          { subject: key, cosigners: [registrar] },
          { now: this.#now(), requireCosigner: true },
        );
        addresses.push(`${body.data.nick}@${body.data.domain}`);
      } catch {
        // An invalid or expired binding is simply not believed.
      }
    }
    const addr = parseAddress(q);
    if (addr && !addresses.includes(`${addr.nick}@${addr.domain}`)) {
      throw new PmbError('bad_record', `The server gave no valid binding of ${q} signed by the key`);
    }
    const home = [...servers.values()].find((s) => s.domain === res.server);
    const contact: Contact = {
      fingerprint: key.fingerprint,
      key,
      addresses,
      server: res.server,
      ...(home ? { endpoint: home.endpoint } : {}),
      records: res.records,
    };
    this.#contacts.set(q, contact);
    this.#contacts.set(key.fingerprint, contact);
    return contact;
  }

  /**
   * The server records a lookup answer carried, each checked: signed by its own key, the newest this
   * server holds. Which key a domain has is what our server pinned (trust on first use, spread by
   * gossip): the client trusts its own server, whose key it pinned, for that (docs/federation.md).
   */
  async #serverRecords(
    items: readonly { record: SignedRecord; publicKey: Uint8Array }[],
  ): Promise<Map<string, { key: PublicIdentity; domain: string; endpoint: string }>> {
    const out = new Map<string, { key: PublicIdentity; domain: string; endpoint: string }>();
    this.#serverKey ??= await readPublicIdentity(this.server.publicKey);
    out.set(this.#serverKey.fingerprint, {
      key: this.#serverKey,
      domain: this.server.domain,
      endpoint: this.conn.url,
    });
    for (const item of items) {
      try {
        const key = await readPublicIdentity(item.publicKey);
        const verified = await verifyRecord(item.record, { subject: key }, { now: this.#now() });
        const body = serverBody.safeParse(verified.payload.body);
        if (verified.payload.kind !== 'server' || !body.success) continue;
        if (!out.has(key.fingerprint)) {
          out.set(key.fingerprint, { key, domain: body.data.domain, endpoint: body.data.endpoints.ws });
        }
      } catch {
        // A server record that does not verify is ignored: its bindings are then not believed.
      }
    }
    return out;
  }

  /** The registrar key for a binding: the server record of `fingerprint`, which must be for `domain`. */
  #registrar(
    fingerprint: string,
    domain: string,
    servers: Map<string, { key: PublicIdentity; domain: string }>,
  ): PublicIdentity | undefined {
    const s = servers.get(fingerprint);
    return s && s.domain === domain ? s.key : undefined;
  }

  /**
   * Publish the next record of this identity's own chain (location, profile, recovery ...): the chain
   * head comes from a fresh lookup of our own fingerprint.
   */
  async publish(
    kind: 'location' | 'profile' | 'recovery' | 'devices',
    body: Record<string, unknown>,
  ): Promise<SignedRecord> {
    this.#contacts.delete(this.identity.fingerprint);
    const res = await this.conn.request(Lookup, { query: this.identity.fingerprint });
    const head = res.records.at(-1);
    const headPayload = head ? decodeRecord(head) : undefined;
    const record = await createRecord(this.identity, {
      kind,
      subject: this.identity.fingerprint,
      seq: (headPayload?.seq ?? 0) + 1,
      prev: head ? await recordHash(head) : null,
      ts: this.#now(),
      body,
    });
    await this.conn.request(Publish, { record });
    this.#contacts.delete(this.identity.fingerprint);
    return record;
  }

  /** Make this server the account's home: a new location record, signed here, gossiped everywhere. */
  moveHere(): Promise<SignedRecord> {
    return this.publish('location', { domain: this.server.domain, server: this.server.fingerprint });
  }

  /** Sign, encrypt and send; resolves once the server has the message on disk. */
  async send(
    to: string | string[],
    text: string,
    opts: { id?: string; kind?: string } = {},
  ): Promise<ResultOf<typeof Send>> {
    const recipients = await Promise.all((Array.isArray(to) ? to : [to]).map((t) => this.lookup(t)));
    const envelope = await this.seal(
      recipients.map((r) => r.key),
      text,
      opts,
    );
    return this.sendEnvelope(envelope);
  }

  /** Build a sealed envelope without sending it (benchmarks prepare bodies ahead of the timed part). */
  async seal(
    recipients: PublicIdentity[],
    text: string,
    opts: { id?: string; kind?: string } = {},
  ): Promise<Envelope> {
    const id = opts.id ?? newMessageId();
    const kind = opts.kind ?? 'msg';
    const ts = this.#now();
    const to = [...new Set(recipients.map((r) => r.fingerprint))];
    const content: MessageContent = { v: 1, id, from: this.identity.fingerprint, to, ts, kind, text };
    const body = await sealMessage(this.identity, recipients, content);
    const max = this.conn.hello?.limits.maxBodyBytes ?? Number.POSITIVE_INFINITY;
    if (body.length > max)
      throw new PmbError('bad_message', `The message is too large for this server (${max} bytes)`);
    return { id, from: this.identity.fingerprint, to, ts, kind, bv: 1, body };
  }

  sendEnvelope(envelope: Envelope): Promise<ResultOf<typeof Send>> {
    return this.conn.request(Send, { envelope });
  }

  ping(): Promise<ResultOf<typeof Ping>> {
    return this.conn.request(Ping, {});
  }

  /** Resolves when everything stored for this device before login has been handled. */
  waitSynced(): Promise<void> {
    if (this.#synced) return Promise.resolve();
    if (this.conn.closed) return Promise.reject(new PmbError('unavailable', 'The connection is closed'));
    return new Promise((resolve, reject) => this.#syncWaiters.push({ resolve, reject }));
  }

  /** Wait until every handled delivery has been acknowledged to the server, and the server has it on disk. */
  async flushAcks(): Promise<void> {
    await this.#chain;
    while ((this.#acksInFlight > 0 || this.#ackSent < this.#ackWanted) && !this.conn.closed) {
      if (this.#acksInFlight === 0) this.#sendAck();
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  close(): void {
    this.conn.close();
  }

  /** Deliveries are handled one at a time, in mailbox order, then acknowledged. */
  #enqueue(frame: DeliverFrame): void {
    this.#chain = this.#chain.then(() => this.#handle(frame));
  }

  async #handle(frame: DeliverFrame): Promise<void> {
    if (this.#halted) return;
    const { envelope } = frame;
    const key = `${envelope.from}/${envelope.id}`;
    let seen: boolean;
    try {
      seen = await this.#seen.has(key);
    } catch (err) {
      return this.#halt(storeFailed(err));
    }
    let message: ReceivedMessage | undefined;
    try {
      if (seen) throw new PmbError('duplicate');
      const sender = await this.lookup(envelope.from);
      const content = await openMessage(this.identity, envelope.body, {
        id: envelope.id,
        from: sender.key,
        to: envelope.to,
        kind: envelope.kind,
      });
      if (content.ts !== envelope.ts)
        throw new PmbError('bad_message', 'The envelope time differs from the signed one');
      message = {
        id: envelope.id,
        from: envelope.from,
        to: envelope.to,
        ts: content.ts,
        received: frame.received,
        seq: frame.seq,
        kind: content.kind,
        text: content.text,
        outgoing: envelope.from === this.identity.fingerprint,
        content,
      };
    } catch (err) {
      const e = err instanceof PmbError ? err : new PmbError('bad_message', String(err));
      // Could not be checked now (the sender's key could not be fetched): not acknowledged, it comes again.
      if (TRANSIENT.has(e.code)) return this.#halt(e);
      // A redelivered message was already shown: acknowledge it again and say nothing.
      if (e.code !== 'duplicate') this.events.rejected?.(envelope, e);
    }
    if (message) {
      try {
        await this.events.message?.(message);
      } catch (err) {
        // The application could not take it (e.g. its store failed): not acknowledged, it comes again.
        return this.#halt(err instanceof PmbError ? err : new PmbError('unavailable', String(err)));
      }
      try {
        // Marked seen before the ack: pushed again later (the ack or its cursor lost), it is not shown twice.
        await this.#seen.add(key);
      } catch (err) {
        return this.#halt(storeFailed(err));
      }
    }
    this.#ackWanted = Math.max(this.#ackWanted, frame.seq);
    this.#handledSinceAck++;
    if (this.#acksInFlight === 0 || this.#handledSinceAck >= ACK_EVERY) this.#sendAck();
  }

  /**
   * A delivery could not be handled for a passing reason. Acks are cumulative, so nothing after it may be
   * acknowledged either: stop acking and close; at the next login the server pushes it again.
   */
  #halt(err: PmbError): void {
    if (this.#halted) return;
    this.#halted = true;
    this.events.halted?.(err);
    this.conn.close(1011, 'a delivery could not be handled now');
  }

  /**
   * Cumulative acks: one in flight, plus another every ACK_EVERY handled deliveries while it waits for its
   * answer, so a burst costs a few acks, not one each, and the server's window keeps moving.
   */
  #sendAck(): void {
    if (this.conn.closed || this.#ackRequested >= this.#ackWanted) return;
    const seq = this.#ackWanted;
    this.#ackRequested = seq;
    this.#handledSinceAck = 0;
    this.#acksInFlight++;
    this.conn.request(Ack, { seq }).then(
      () => {
        this.#ackSent = Math.max(this.#ackSent, seq);
        if (--this.#acksInFlight === 0) this.#ackRequested = this.#ackSent; // below it if one failed
        this.#sendAck(); // what was handled meanwhile
      },
      () => {
        // Refused or the connection went away: unacknowledged mail is pushed again at the next login. The
        // next handled delivery (or flushAcks) asks again; not at once, which could spin on a failing server.
        if (--this.#acksInFlight === 0) this.#ackRequested = this.#ackSent;
      },
    );
  }
}

function storeFailed(err: unknown): PmbError {
  return err instanceof PmbError ? err : new PmbError('unavailable', `The seen-store failed: ${String(err)}`);
}

/** Failures that say nothing about the message: it is kept (not acknowledged) for a later try. */
const TRANSIENT = new Set(['unavailable', 'timeout', 'unreachable', 'internal', 'rate_limited']);

export function newMessageId(): string {
  return toHex(randomBytes(16));
}

export function isFingerprint(text: string): boolean {
  return fingerprintSchema.safeParse(text).success;
}
