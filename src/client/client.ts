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
  Register,
  type ResultOf,
  Send,
} from '../protocol/frames.js';
import { BINDING_TTL_MS, bindingBody, type SignedRecord } from '../protocol/records.js';
import { fingerprint as fingerprintSchema, parseAddress } from '../protocol/schemas.js';
import { Connection, type ConnectOptions } from './connection.js';

export interface ClientOptions extends ConnectOptions {
  identity: Identity;
  /** This device's id within the account. */
  device: string;
  /** Fingerprint the server must have (pinned at first contact); a different key is refused. */
  expectServer?: string;
  now?: () => number;
}

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
  server: string;
  records: SignedRecord[];
}

export interface ClientEvents {
  message?: (m: ReceivedMessage) => void | Promise<void>;
  /** A delivered envelope that failed decryption or verification; it is acknowledged and dropped. */
  rejected?: (envelope: Envelope, err: PmbError) => void;
  synced?: () => void;
  close?: (code: number, reason: string) => void;
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
  /** Recently handled (sender, id) pairs: a redelivered message is acknowledged but not shown again. */
  readonly #seen = new Set<string>();
  #serverKey: PublicIdentity | undefined;
  #chain: Promise<void> = Promise.resolve();
  #ackSent = 0;
  #ackWanted = 0;
  #acking = false;
  #synced = false;
  #syncWaiters: { resolve: () => void; reject: (e: PmbError) => void }[] = [];

  private constructor(conn: Connection, opts: ClientOptions) {
    this.conn = conn;
    this.identity = opts.identity;
    this.device = opts.device;
    this.#now = opts.now ?? Date.now;
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

  /** Log in by answering the challenge encrypted to our key; the backlog starts arriving after this. */
  async login(): Promise<ResultOf<typeof LoginFinish>> {
    const { challenge, expires } = await this.conn.request(LoginStart, {
      fingerprint: this.identity.fingerprint,
      device: this.device,
    });
    const secret = await readChallenge(this.identity, challenge);
    const answer = await challengeAnswer({
      secret,
      server: this.server.fingerprint,
      connection: this.conn.hello!.connection,
      expires,
    });
    return this.conn.request(LoginFinish, { answer });
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
    const addresses: string[] = [];
    for (const record of res.records) {
      const payload = decodeRecord(record);
      if (payload.kind !== 'binding') continue;
      const body = bindingBody.safeParse(payload.body);
      if (!body.success) continue;
      try {
        // A name is believed only when both the key and the name's registrar signed it.
        const registrar = await this.#registrar(body.data.registrar);
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
    const contact: Contact = {
      fingerprint: key.fingerprint,
      key,
      addresses,
      server: res.server,
      records: res.records,
    };
    this.#contacts.set(q, contact);
    this.#contacts.set(key.fingerprint, contact);
    return contact;
  }

  /** Public key of a registrar server. Today: the server we talk to; federation will bring the others. */
  async #registrar(fingerprint: string): Promise<PublicIdentity | undefined> {
    if (fingerprint !== this.server.fingerprint) return undefined;
    this.#serverKey ??= await readPublicIdentity(this.server.publicKey);
    return this.#serverKey;
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

  /** Wait until every handled delivery has been acknowledged to the server. */
  async flushAcks(): Promise<void> {
    await this.#chain;
    while ((this.#acking || this.#ackSent < this.#ackWanted) && !this.conn.closed) {
      if (!this.#acking) void this.#sendAck();
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
    const { envelope } = frame;
    const key = `${envelope.from}/${envelope.id}`;
    try {
      if (this.#seen.has(key)) throw new PmbError('duplicate');
      const sender = await this.lookup(envelope.from);
      const content = await openMessage(this.identity, envelope.body, {
        id: envelope.id,
        from: sender.key,
        to: envelope.to,
        kind: envelope.kind,
      });
      if (content.ts !== envelope.ts)
        throw new PmbError('bad_message', 'The envelope time differs from the signed one');
      this.#remember(key);
      await this.events.message?.({
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
      });
    } catch (err) {
      const e = err instanceof PmbError ? err : new PmbError('bad_message', String(err));
      // A redelivered message was already shown: acknowledge it again and say nothing.
      if (e.code !== 'duplicate') this.events.rejected?.(envelope, e);
    }
    this.#ackWanted = Math.max(this.#ackWanted, frame.seq);
    if (!this.#acking) void this.#sendAck();
  }

  #remember(key: string): void {
    this.#seen.add(key);
    if (this.#seen.size > 10_000) {
      for (const k of this.#seen) {
        this.#seen.delete(k);
        if (this.#seen.size <= 5_000) break;
      }
    }
  }

  /** Cumulative acks, at most one in flight: a burst of deliveries costs a few acks, not one each. */
  async #sendAck(): Promise<void> {
    this.#acking = true;
    try {
      while (this.#ackSent < this.#ackWanted && !this.conn.closed) {
        const seq = this.#ackWanted;
        await this.conn.request(Ack, { seq });
        this.#ackSent = seq;
      }
    } catch {
      // The connection went away: unacknowledged mail is pushed again at the next login.
    } finally {
      this.#acking = false;
    }
  }
}

export function newMessageId(): string {
  return toHex(randomBytes(16));
}

export function isFingerprint(text: string): boolean {
  return fingerprintSchema.safeParse(text).success;
}
