import WebSocket from 'ws';
import { decodeRecord, type PublicIdentity, readPublicIdentity } from '../crypto/index.js';
import { randomBytes } from '../protocol/bytes.js';
import { fromError, PmbError } from '../protocol/errors.js';
import { type SignedRecord, serverBody } from '../protocol/records.js';
import { S2S_NONCE_BYTES, S2S_SUBPROTOCOL, S2S_VERSIONS, S2sAuth, S2sHello } from '../protocol/s2s.js';
import type { Context } from '../server/context.js';
import { checkLinkProof, linkTranscript, proveLink } from './handshake.js';
import {
  type AnyMethod,
  errorOf,
  FramedSocket,
  type Handler,
  Link,
  type LinkNonces,
  type LinkSetup,
} from './link.js';
import { acceptServerRecord } from './server-records.js';

export interface LinksOptions {
  /** Whole handshake, either side (default 10 s). */
  handshakeTimeoutMs?: number;
  /** Reconnect backoff: first delay, doubling up to maxMs, with jitter (default 1 s to 5 min). */
  backoff?: { initialMs: number; maxMs: number };
  /** How long a request on a link waits for its answer (default 30 s). */
  requestTimeoutMs?: number;
  /**
   * Ping interval on open links; a link silent (not even a pong) for two intervals is terminated. Default:
   * the server's `limits.heartbeatMs`, the same as for client connections.
   */
  heartbeatMs?: number;
  /** Requests with a bad signature tolerated on one link before it is closed (default 3). */
  maxBadSignatures?: number;
}

/**
 * The links of one server (docs/federation.md, "Server-to-server links"): at most one per peer domain,
 * opened by either side; the opener reconnects with backoff while the link is wanted.
 */
export class Links {
  readonly #links = new Map<string, Link>();
  readonly #connecting = new Map<string, Promise<Link>>();
  readonly #wanted = new Set<string>();
  readonly #retry = new Map<string, { timer?: NodeJS.Timeout; delay: number }>();
  readonly #sockets = new Set<FramedSocket>();
  readonly #handlers = new Map<string, { method: AnyMethod; handler: Handler }>();
  readonly #listeners: ((link: Link) => void)[] = [];
  readonly #timeoutMs: number;
  readonly #backoff: { initialMs: number; maxMs: number };
  readonly #requestTimeoutMs: number;
  readonly #heartbeatMs: number;
  readonly #maxBadSignatures: number;
  #closing = false;

  constructor(
    private readonly ctx: Context,
    opts: LinksOptions = {},
  ) {
    this.#timeoutMs = opts.handshakeTimeoutMs ?? 10_000;
    this.#backoff = opts.backoff ?? { initialMs: 1000, maxMs: 5 * 60_000 };
    this.#requestTimeoutMs = opts.requestTimeoutMs ?? 30_000;
    this.#heartbeatMs = opts.heartbeatMs ?? ctx.config.limits.heartbeatMs;
    this.#maxBadSignatures = opts.maxBadSignatures ?? 3;
  }

  #setup(domain: string, peer: PublicIdentity, initiator: boolean, nonces: LinkNonces): LinkSetup {
    return {
      domain,
      peer,
      initiator,
      nonces,
      signer: this.ctx.identity,
      requestTimeoutMs: this.#requestTimeoutMs,
      heartbeatMs: this.#heartbeatMs,
      maxBadSignatures: this.#maxBadSignatures,
    };
  }

  /** The open link to `domain`, if any. */
  get(domain: string): Link | undefined {
    return this.#links.get(domain);
  }

  /** Domains with an open link. */
  get domains(): string[] {
    return [...this.#links.keys()];
  }

  /** Serve `method` on every link, present and future. */
  handle(method: AnyMethod, handler: Handler): void {
    this.#handlers.set(method.name, { method, handler });
    for (const l of this.#links.values()) l.handle(method, handler);
  }

  /** Called for every link that opens (either side). */
  onLink(listener: (link: Link) => void): void {
    this.#listeners.push(listener);
  }

  /** Responder side: a socket the gateway accepted with S2S_SUBPROTOCOL. */
  accept(ws: WebSocket, address: string): void {
    const sock = this.#track(new FramedSocket(ws));
    if (this.#closing) {
      sock.close(1001, 'server shutting down');
      return;
    }
    const timer = setTimeout(
      () => sock.fail(new PmbError('timeout', 'The link handshake took too long', { fatal: true })),
      this.#timeoutMs,
    );
    timer.unref?.();
    ws.on('close', () => clearTimeout(timer));
    let stage: 'hello' | 'busy' | 'auth' = 'hello';
    let state:
      | { peer: PublicIdentity; domain: string; transcript: Uint8Array; nonces: LinkNonces }
      | undefined;
    sock.onFrame = (frame) => {
      const id = typeof frame.id === 'number' ? frame.id : undefined;
      if (stage === 'busy') {
        sock.fail(new PmbError('bad_request', 'Wait for the answer to s2s.hello'), id);
        return;
      }
      if (stage === 'hello') {
        const parsed = S2sHello.request.safeParse(frame);
        if (!parsed.success) {
          const issue = parsed.error.issues[0];
          sock.fail(
            frame.type === S2sHello.name
              ? new PmbError('bad_frame', `s2s.hello: ${issue?.path.join('.') || 'frame'}: ${issue?.message}`)
              : new PmbError('hello_required', 'The first frame of a server link is s2s.hello'),
            id,
          );
          return;
        }
        stage = 'busy';
        const hello = parsed.data;
        this.#answerHello(hello).then(
          (r) => {
            state = r.state;
            stage = 'auth';
            sock.send({ type: S2sHello.okType, id: hello.id, ...r.result });
          },
          (err: unknown) => {
            const e = fromError(err);
            this.ctx.log.info({ address, code: e.code, err: e.message }, 'server link refused at hello');
            sock.fail(e, hello.id);
          },
        );
        return;
      }
      const parsed = S2sAuth.request.safeParse(frame);
      if (!parsed.success || !state) {
        sock.fail(new PmbError('bad_request', 'Expected s2s.auth'), id);
        return;
      }
      const s = state;
      stage = 'busy';
      checkLinkProof(s.peer, s.transcript, parsed.data.proof).then(
        (ok) => {
          if (!ok) {
            this.ctx.log.info({ address, domain: s.domain }, 'server link refused: bad proof');
            sock.fail(new PmbError('bad_signature', 'The link proof does not verify'), parsed.data.id);
            return;
          }
          clearTimeout(timer);
          if (sock.closed) return;
          sock.send({ type: S2sAuth.okType, id: parsed.data.id });
          this.#register(new Link(sock, this.#setup(s.domain, s.peer, false, s.nonces), this.#handlers));
        },
        () => sock.fail(new PmbError('bad_signature', 'The link proof does not verify'), parsed.data.id),
      );
    };
  }

  async #answerHello(hello: {
    versions: number[];
    serverRecord: SignedRecord;
    publicKey: Uint8Array;
    nonce: Uint8Array;
  }) {
    const own = this.#ownRecord();
    if (!hello.versions.includes(S2S_VERSIONS[0])) {
      throw new PmbError('unsupported_version', `We speak s2s versions ${S2S_VERSIONS.join(', ')}`);
    }
    const peer = await readPublicIdentity(hello.publicKey);
    const domain = recordDomain(hello.serverRecord);
    // The first key of a domain is learned from its discovery document, never from whoever connects.
    if (this.ctx.store.identities.domainKey(domain) === undefined) {
      const info = await this.ctx.discovery.lookup(domain);
      if (info.fingerprint !== peer.fingerprint) {
        throw new PmbError(
          'wrong_server',
          `${domain} is server ${info.fingerprint}, not ${peer.fingerprint}`,
        );
      }
    }
    const learned = await acceptServerRecord(this.ctx.store, hello.serverRecord, peer, this.ctx.now());
    if (learned.outcome === 'accepted') this.ctx.gossip?.announce(hello.serverRecord, peer.publicKeyBytes);
    const nonce = randomBytes(S2S_NONCE_BYTES);
    const transcript = linkTranscript({
      initiator: peer.fingerprint,
      responder: this.ctx.identity.fingerprint,
      initiatorNonce: hello.nonce,
      responderNonce: nonce,
    });
    const proof = await proveLink(this.ctx.identity, transcript);
    return {
      state: { peer, domain, transcript, nonces: { initiator: hello.nonce, responder: nonce } },
      result: {
        version: S2S_VERSIONS[0],
        domain: this.ctx.config.domain,
        serverRecord: own,
        publicKey: this.ctx.identity.publicKeyBytes,
        nonce,
        proof,
      },
    };
  }

  /**
   * The link to `domain`: the open one, or a new one (discovery, handshake). Once open the link is wanted:
   * when it drops it is reopened with backoff until Link.close() or Links.close().
   */
  connect(domain: string): Promise<Link> {
    const d = domain.trim().toLowerCase();
    const open = this.#links.get(d);
    if (open) return Promise.resolve(open);
    const running = this.#connecting.get(d);
    if (running) return running;
    const p = this.#open(d).finally(() => this.#connecting.delete(d));
    this.#connecting.set(d, p);
    return p;
  }

  async #open(domain: string): Promise<Link> {
    if (this.#closing) throw new PmbError('unreachable', 'the server is shutting down');
    const own = this.#ownRecord();
    const info = await this.ctx.discovery.lookup(domain);
    const ws = new WebSocket(info.link.url, S2S_SUBPROTOCOL, {
      ...info.link.options,
      perMessageDeflate: false,
    });
    const sock = this.#track(new FramedSocket(ws));
    const nonce = randomBytes(S2S_NONCE_BYTES);
    try {
      const link = await new Promise<Link>((resolve, reject) => {
        let settled = false;
        const done = (err: Error | undefined, link?: Link) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          if (err) {
            sock.close(
              err instanceof PmbError ? err.closeCode : 1000,
              err instanceof PmbError ? err.code : '',
            );
            reject(err);
          } else resolve(link as Link);
        };
        const timer = setTimeout(
          () => done(new PmbError('timeout', `the link handshake with ${domain} took too long`)),
          this.#timeoutMs,
        );
        timer.unref?.();
        ws.once('error', (err) =>
          done(new PmbError('unreachable', `cannot reach ${domain}: ${err.message}`)),
        );
        ws.once('close', (code, reason) =>
          done(new PmbError('unreachable', `${domain} closed the link (${code} ${reason.toString()})`)),
        );
        let transcript: Uint8Array | undefined;
        let peer: PublicIdentity | undefined;
        let responderNonce: Uint8Array | undefined;
        ws.once('open', () => {
          sock.send({
            type: S2sHello.name,
            id: 1,
            versions: [...S2S_VERSIONS],
            serverRecord: own,
            publicKey: this.ctx.identity.publicKeyBytes,
            nonce,
          });
        });
        sock.onFrame = (frame) => {
          if (frame.type === 'error') {
            done(errorOf(frame, `${domain}: `));
            return;
          }
          if (!transcript) {
            const parsed = S2sHello.response.safeParse(frame);
            if (!parsed.success || parsed.data.id !== 1) {
              done(new PmbError('bad_frame', `${domain} did not answer s2s.hello`));
              return;
            }
            const ok = parsed.data;
            (async () => {
              const key = await readPublicIdentity(ok.publicKey);
              if (key.fingerprint !== info.fingerprint) {
                throw new PmbError(
                  'wrong_server',
                  `${domain} is ${info.fingerprint}, the link offers ${key.fingerprint}`,
                );
              }
              if (recordDomain(ok.serverRecord) !== domain || ok.domain !== domain) {
                throw new PmbError('wrong_server', `the server at ${info.websocket} is not ${domain}`);
              }
              const learned = await acceptServerRecord(this.ctx.store, ok.serverRecord, key, this.ctx.now());
              if (learned.outcome === 'accepted')
                this.ctx.gossip?.announce(ok.serverRecord, key.publicKeyBytes);
              const t = linkTranscript({
                initiator: this.ctx.identity.fingerprint,
                responder: key.fingerprint,
                initiatorNonce: nonce,
                responderNonce: ok.nonce,
              });
              if (!(await checkLinkProof(key, t, ok.proof))) {
                throw new PmbError('bad_signature', `${domain}: the link proof does not verify`);
              }
              transcript = t;
              peer = key;
              responderNonce = ok.nonce;
              sock.send({ type: S2sAuth.name, id: 2, proof: await proveLink(this.ctx.identity, t) });
            })().catch((err: unknown) => done(fromError(err)));
            return;
          }
          const parsed = S2sAuth.response.safeParse(frame);
          if (!parsed.success || parsed.data.id !== 2 || !peer || !responderNonce) {
            done(new PmbError('bad_frame', `${domain} did not answer s2s.auth`));
            return;
          }
          done(
            undefined,
            new Link(
              sock,
              this.#setup(domain, peer, true, { initiator: nonce, responder: responderNonce }),
              this.#handlers,
            ),
          );
        };
      });
      this.#wanted.add(domain);
      this.#retry.delete(domain);
      return this.#register(link);
    } catch (err) {
      sock.close();
      throw err;
    }
  }

  /** Keeps one link per domain; of two links opened at once, the one opened by the lower fingerprint stays. */
  #register(link: Link): Link {
    const held = this.#links.get(link.domain);
    if (held?.open && held !== link) {
      const own = this.ctx.identity.fingerprint;
      const opener = (l: Link) => (l.initiator ? own : l.fingerprint);
      if (held.initiator !== link.initiator && opener(held) < opener(link)) {
        link.close(1000, 'duplicate link');
        return held;
      }
      this.#links.delete(link.domain);
      held.close(1000, 'replaced by a newer link');
    }
    this.#links.set(link.domain, link);
    link.onClose(() => {
      if (this.#links.get(link.domain) === link) {
        this.#links.delete(link.domain);
        this.ctx.log.info({ domain: link.domain }, 'server link closed');
        this.#scheduleReconnect(link.domain);
      }
    });
    this.ctx.log.info(
      { domain: link.domain, fingerprint: link.fingerprint, initiator: link.initiator },
      'server link open',
    );
    for (const l of this.#listeners) l(link);
    return link;
  }

  /**
   * Keep a link to `domain` (a configured peer): opened now, and reopened with backoff whenever it is down,
   * also when the first attempt fails.
   */
  want(domain: string): void {
    const d = domain.trim().toLowerCase();
    if (this.#closing || d === this.ctx.config.domain) return;
    this.#wanted.add(d);
    this.connect(d).catch((err: unknown) => {
      this.ctx.log.info({ domain: d, err: fromError(err).message }, 'peer not reachable yet; retrying');
      this.#scheduleReconnect(d);
    });
  }

  /** Stop wanting the link to `domain` and close it. */
  disconnect(domain: string): void {
    this.#wanted.delete(domain);
    const r = this.#retry.get(domain);
    if (r?.timer) clearTimeout(r.timer);
    this.#retry.delete(domain);
    this.#links.get(domain)?.close(1000, 'link no longer wanted');
  }

  #scheduleReconnect(domain: string): void {
    if (this.#closing || !this.#wanted.has(domain) || this.#links.has(domain)) return;
    const r = this.#retry.get(domain) ?? { delay: this.#backoff.initialMs };
    if (r.timer) return;
    // Full delay +-25 % jitter, so peers restarting together do not reconnect in step.
    const wait = Math.round(r.delay * (0.75 + Math.random() * 0.5));
    r.timer = setTimeout(() => {
      r.timer = undefined;
      if (this.#closing || !this.#wanted.has(domain) || this.#links.has(domain)) return;
      this.connect(domain).catch((err: unknown) => {
        r.delay = Math.min(this.#backoff.maxMs, r.delay * 2);
        this.ctx.log.debug(
          { domain, err: fromError(err).message, next: r.delay },
          'server link retry failed',
        );
        this.#scheduleReconnect(domain);
      });
    }, wait);
    r.timer.unref?.();
    this.#retry.set(domain, r);
  }

  #ownRecord(): SignedRecord {
    const own = this.ctx.serverRecord;
    if (!own) throw new PmbError('unavailable', 'this server has no server record yet');
    return own;
  }

  #track(sock: FramedSocket): FramedSocket {
    this.#sockets.add(sock);
    sock.ws.on('close', () => this.#sockets.delete(sock));
    return sock;
  }

  /** Close every link and socket, stop reconnecting. */
  async close(): Promise<void> {
    this.#closing = true;
    for (const r of this.#retry.values()) if (r.timer) clearTimeout(r.timer);
    this.#retry.clear();
    this.#wanted.clear();
    for (const l of this.#links.values()) l.close(1001, 'server shutting down');
    this.#links.clear();
    for (const s of this.#sockets) s.close(1001, 'server shutting down');
    const deadline = Date.now() + 2000;
    while (this.#sockets.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    for (const s of this.#sockets) s.ws.terminate();
    this.#sockets.clear();
  }
}

/** The domain a server record claims (checked for form only; acceptServerRecord verifies the record). */
function recordDomain(record: SignedRecord): string {
  let body: unknown;
  try {
    body = decodeRecord(record).body;
  } catch {
    throw new PmbError('bad_record', 'The server record is malformed');
  }
  const parsed = serverBody.safeParse(body);
  if (!parsed.success) throw new PmbError('bad_record', 'The server record body is malformed');
  return parsed.data.domain;
}
