import WebSocket, { type RawData } from 'ws';
import { type Identity, type PublicIdentity, signBytes, verifyBytes } from '../crypto/index.js';
import { cborCodec, encodeCbor } from '../protocol/codec.js';
import { ERROR_CODES, type ErrorCode, fromError, PmbError } from '../protocol/errors.js';
import type { MethodDef } from '../protocol/frames.js';

/*
 * One open server link: CBOR framing over a WebSocket, requests signed by the sending server over the
 * link's nonces and checked before any handler runs, and a heartbeat. src/federation/links.ts opens them.
 */

/** What the link's nonces and one request bind: the bytes a request's `sig` signs. */
export function requestSigningBytes(
  nonces: LinkNonces,
  id: number,
  type: string,
  params: Record<string, unknown>,
): Uint8Array {
  return encodeCbor(['pmb-s2s-req-v1', nonces.initiator, nonces.responder, id, type, params]);
}

export interface LinkNonces {
  initiator: Uint8Array;
  responder: Uint8Array;
}

export interface LinkSetup {
  domain: string;
  peer: PublicIdentity;
  initiator: boolean;
  nonces: LinkNonces;
  signer: Identity;
  requestTimeoutMs: number;
  heartbeatMs: number;
  maxBadSignatures: number;
}

export type AnyMethod = MethodDef<string, import('zod').ZodType, import('zod').ZodType> & { okType: string };
export type Frame = Record<string, unknown> & { type: string; id?: number };
export type Handler = (params: Record<string, unknown>, link: Link) => Promise<Record<string, unknown>>;

/** Frames over one WebSocket with the CBOR codec, each decoded frame handed to `onFrame`. */
export class FramedSocket {
  onFrame: (frame: Frame) => void = () => {};
  closed = false;

  constructor(readonly ws: WebSocket) {
    ws.on('message', (data: RawData) => {
      let frame: unknown;
      try {
        const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
        frame = cborCodec.decode(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length));
      } catch {
        this.fail(new PmbError('bad_frame', 'Undecodable cbor frame'));
        return;
      }
      // A map without a text type would reach code that reads frame.type as a string.
      if (
        frame === null ||
        typeof frame !== 'object' ||
        Array.isArray(frame) ||
        typeof (frame as { type?: unknown }).type !== 'string'
      ) {
        this.fail(new PmbError('bad_frame', 'A frame is a map with a type'));
        return;
      }
      try {
        this.onFrame(frame as Frame);
      } catch (err) {
        // Thrown out of a ws listener it would end the process (or wedge this socket's reader).
        this.fail(fromError(err));
      }
    });
    ws.on('close', () => {
      this.closed = true;
    });
    ws.on('error', () => {});
  }

  send(frame: Record<string, unknown>): void {
    if (this.closed || this.ws.readyState !== WebSocket.OPEN) return;
    this.ws.send(cborCodec.encode(frame));
  }

  error(err: PmbError, id?: number): void {
    this.send({ type: 'error', ...(id === undefined ? {} : { id }), code: err.code, message: err.message });
  }

  /** Answer with the error and close the socket. */
  fail(err: PmbError, id?: number): void {
    this.error(err, id);
    this.close(err.closeCode, err.code);
  }

  close(code = 1000, reason = ''): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.ws.close(code, reason);
    } catch {
      this.ws.terminate();
    }
  }
}

/** An open, authenticated link to another server. */
export class Link {
  #nextId = 1;
  readonly #pending = new Map<
    number,
    { resolve: (v: Record<string, unknown>) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }
  >();
  readonly #handlers = new Map<string, { method: AnyMethod; handler: Handler }>();
  readonly #closeListeners: (() => void)[] = [];
  #closed = false;

  /** The peer's domain, as its server record states it. */
  readonly domain: string;
  /** The peer's server key fingerprint. */
  readonly fingerprint: string;
  readonly publicKey: PublicIdentity;
  /** true when this server opened the link. */
  readonly initiator: boolean;
  /** Requests refused for a bad signature on this link. */
  badSignatures = 0;
  readonly #setup: LinkSetup;
  /** Sends in request order, though signatures are computed in parallel. */
  #sendChain: Promise<void> = Promise.resolve();
  /** Incoming requests are verified and started in arrival order. */
  #recvChain: Promise<void> = Promise.resolve();
  #heartbeat: NodeJS.Timeout | undefined;
  #lastAlive = Date.now();
  #lastBeat = Date.now();

  constructor(
    readonly socket: FramedSocket,
    setup: LinkSetup,
    handlers: Map<string, { method: AnyMethod; handler: Handler }>,
  ) {
    this.#setup = setup;
    this.domain = setup.domain;
    this.fingerprint = setup.peer.fingerprint;
    this.publicKey = setup.peer;
    this.initiator = setup.initiator;
    for (const [k, v] of handlers) this.#handlers.set(k, v);
    socket.onFrame = (frame) => {
      this.#lastAlive = Date.now();
      this.#onFrame(frame);
    };
    socket.ws.on('pong', () => {
      this.#lastAlive = Date.now();
    });
    socket.ws.on('close', () => this.#onClose());
    if (setup.heartbeatMs > 0) {
      this.#heartbeat = setInterval(() => this.#beat(), setup.heartbeatMs);
      this.#heartbeat.unref?.();
    }
    if (socket.closed || socket.ws.readyState !== WebSocket.OPEN) this.#onClose();
  }

  #beat(): void {
    const now = Date.now();
    // This timer itself ran late (our event loop was busy): pongs may still wait unread behind it, so the
    // peer's silence is not judged on this beat.
    const late = now - this.#lastBeat > 1.5 * this.#setup.heartbeatMs;
    this.#lastBeat = now;
    if (!late && now - this.#lastAlive > 2 * this.#setup.heartbeatMs) {
      this.socket.closed = true;
      this.socket.ws.terminate();
      this.#onClose();
      return;
    }
    try {
      this.socket.ws.ping();
    } catch {
      // the close event follows
    }
  }

  get open(): boolean {
    return !this.#closed;
  }

  /** Send a request of `method` and wait for its answer; an error frame rejects with its PmbError. */
  request<M extends AnyMethod>(method: M, params: Record<string, unknown>): Promise<Record<string, unknown>> {
    if (this.#closed)
      return Promise.reject(new PmbError('unreachable', `the link to ${this.domain} is closed`));
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new PmbError('timeout', `${method.name} to ${this.domain} got no answer`));
      }, this.#setup.requestTimeoutMs);
      timer.unref?.();
      this.#pending.set(id, { resolve, reject, timer });
      const sig = signBytes(
        this.#setup.signer,
        requestSigningBytes(this.#setup.nonces, id, method.name, params),
      );
      this.#sendChain = this.#sendChain
        .then(async () => {
          const s = await sig;
          this.socket.send({ type: method.name, id, ...params, sig: s });
        })
        .catch((err: unknown) => {
          const waiting = this.#pending.get(id);
          if (!waiting) return;
          this.#pending.delete(id);
          clearTimeout(waiting.timer);
          waiting.reject(fromError(err));
        });
    });
  }

  /** Serve requests of `method` arriving on this link. */
  handle(method: AnyMethod, handler: Handler): void {
    this.#handlers.set(method.name, { method, handler });
  }

  onClose(listener: () => void): void {
    if (this.#closed) listener();
    else this.#closeListeners.push(listener);
  }

  close(code = 1000, reason = 'link closed'): void {
    this.socket.close(code, reason);
    this.#onClose();
  }

  #onFrame(frame: Frame): void {
    const id = typeof frame.id === 'number' ? frame.id : undefined;
    if (frame.type === 'error' || frame.type.endsWith('.ok')) {
      const waiting = id === undefined ? undefined : this.#pending.get(id);
      if (!waiting) return;
      this.#pending.delete(id as number);
      clearTimeout(waiting.timer);
      if (frame.type === 'error') {
        waiting.reject(errorOf(frame, ''));
      } else {
        const { type: _t, id: _i, ...result } = frame;
        waiting.resolve(result);
      }
      return;
    }
    // Every request is signed by the peer over this link's nonces (docs/protocol.md 17): checked before any
    // handler runs, in arrival order so handlers start in the order the peer sent.
    const { type: _type, id: _id, sig, ...raw } = frame;
    const checked =
      id !== undefined && sig instanceof Uint8Array
        ? verifyBytes(
            this.publicKey,
            requestSigningBytes(this.#setup.nonces, id, frame.type, raw),
            sig,
          ).catch(() => false)
        : Promise.resolve(false);
    this.#recvChain = this.#recvChain.then(async () => {
      const ok = await checked;
      if (this.#closed) return;
      if (!ok) {
        this.badSignatures++;
        const err = new PmbError('bad_signature', 'The request signature does not verify for this link');
        if (this.badSignatures >= this.#setup.maxBadSignatures) {
          this.socket.fail(err, id);
          this.#onClose();
        } else this.socket.error(err, id);
        return;
      }
      this.#dispatch(frame, id, raw);
    });
  }

  #dispatch(frame: Frame, id: number | undefined, raw: Record<string, unknown>): void {
    const route = this.#handlers.get(frame.type);
    if (!route) {
      this.socket.error(
        new PmbError('unknown_type', `Unknown frame type ${JSON.stringify(frame.type)}`.slice(0, 120)),
        id,
      );
      return;
    }
    const parsed = route.method.request.safeParse({ type: frame.type, id, ...raw });
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      this.socket.error(
        new PmbError(
          'bad_frame',
          `${route.method.name}: ${issue?.path.join('.') || 'frame'}: ${issue?.message}`,
        ),
        id,
      );
      return;
    }
    const { type: _t, id: reqId, ...params } = parsed.data as Frame;
    route.handler(params, this).then(
      (result) => this.socket.send({ type: route.method.okType, id: reqId, ...result }),
      (err: unknown) => this.socket.error(fromError(err), reqId),
    );
  }

  #onClose(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#heartbeat) clearInterval(this.#heartbeat);
    for (const [, p] of this.#pending) {
      clearTimeout(p.timer);
      p.reject(new PmbError('unreachable', `the link to ${this.domain} closed`));
    }
    this.#pending.clear();
    for (const l of this.#closeListeners.splice(0)) l();
  }
}

/** The PmbError an error frame stands for (an unknown code reads as internal). */
export function errorOf(frame: Frame, prefix: string): PmbError {
  const code =
    typeof frame.code === 'string' && Object.hasOwn(ERROR_CODES, frame.code)
      ? (frame.code as ErrorCode)
      : 'internal';
  return new PmbError(code, `${prefix}${String(frame.message ?? '')}`);
}
