import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { type RawData, type WebSocket, WebSocketServer } from 'ws';
import { randomBytes, toHex } from '../protocol/bytes.js';
import { codecForSubprotocol, nestingDepth } from '../protocol/codec.js';
import { fromError, PmbError } from '../protocol/errors.js';
import { Hello, METHODS_BY_NAME } from '../protocol/frames.js';
import { S2S_SUBPROTOCOL } from '../protocol/s2s.js';
import { SUBPROTOCOLS } from '../protocol/version.js';
import { clientAddress } from './client-address.js';
import type { Context } from './context.js';
import type { Router } from './router.js';
import { Session } from './session.js';

/** After this many rule breaks (rate, bad frames) in a row the connection is closed. */
const MAX_VIOLATIONS = 20;
/**
 * A peer the server closes must answer the close handshake within this time, or its socket is destroyed (ws
 * waits 30 s; a peer in the middle of trickling a frame would keep its slot that long).
 */
const CLOSE_GRACE_MS = 5_000;

export interface GatewayOptions {
  /** A socket opened with S2S_SUBPROTOCOL (another server): handed over once upgraded. */
  onServerLink?: (ws: WebSocket, address: string) => void;
}

/**
 * The WebSocket side of the server: accepts connections, enforces the wire limits, decodes and
 * validates every frame against its schema, and hands it to the one handler for its type.
 */
export class Gateway {
  readonly #wss: WebSocketServer;
  readonly #perAddress = new Map<string, number>();
  readonly #sessions = new Set<Session>();
  #closing = false;
  #heartbeat: ReturnType<typeof setInterval> | undefined;

  constructor(
    private readonly ctx: Context,
    private readonly router: Router,
    private readonly opts: GatewayOptions = {},
  ) {
    const { limits } = ctx.config;
    this.#wss = new WebSocketServer({
      noServer: true,
      maxPayload: limits.maxFrameBytes,
      perMessageDeflate: false,
      handleProtocols: (protocols) => {
        for (const p of protocols) if (codecForSubprotocol(p)) return p;
        if (opts.onServerLink && protocols.has(S2S_SUBPROTOCOL)) return S2S_SUBPROTOCOL;
        return false;
      },
    });
  }

  get connections(): number {
    return this.#sessions.size;
  }

  start(): void {
    // Dead or stalled peers (nothing, not even a pong, for two intervals) are dropped so they do not pin
    // resources: a socket that stopped reading would otherwise keep its session, window and buffers.
    const every = this.ctx.config.limits.heartbeatMs;
    let lastBeat = Date.now();
    this.#heartbeat = setInterval(() => {
      const now = Date.now();
      // This timer itself ran late (our event loop was busy): pongs may still wait unread behind it, so no
      // peer's silence is judged on this beat (as on server links).
      const late = now - lastBeat > 1.5 * every;
      lastBeat = now;
      for (const s of this.#sessions) {
        if (!late && now - s.lastAlive > 2 * every) {
          this.ctx.log.debug({ session: s.id, account: s.account }, 'silent for two heartbeats: dropped');
          s.socket.terminate();
          continue;
        }
        try {
          s.socket.ping();
        } catch {
          // not open any more: its close event follows
        }
      }
    }, every);
    this.#heartbeat.unref?.();
  }

  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const address = clientAddress(req, this.ctx.config.trustProxy);
    const refuse = (status: number, text: string) => {
      socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    };
    if (this.#closing) {
      refuse(503, 'Service Unavailable');
      return;
    }
    const offered = (req.headers['sec-websocket-protocol'] ?? '')
      .split(',')
      .map((p) => p.trim())
      .filter(Boolean);
    const serverLink = this.opts.onServerLink !== undefined && offered.includes(S2S_SUBPROTOCOL);
    if (offered.length > 0 && !serverLink && !offered.some((p) => codecForSubprotocol(p))) {
      refuse(400, `Bad Request: subprotocol must be one of ${Object.values(SUBPROTOCOLS).join(', ')}`);
      return;
    }
    const count = this.#perAddress.get(address) ?? 0;
    if (count >= this.ctx.config.limits.connectionsPerAddress) {
      refuse(429, 'Too Many Connections');
      return;
    }
    this.#perAddress.set(address, count + 1);
    this.#wss.handleUpgrade(req, socket, head, (ws) => {
      if (ws.protocol === S2S_SUBPROTOCOL && this.opts.onServerLink) {
        ws.on('close', () => this.#release(address));
        this.opts.onServerLink(ws, address);
      } else this.#accept(ws, address);
    });
  }

  #release(address: string): void {
    const n = (this.#perAddress.get(address) ?? 1) - 1;
    if (n <= 0) this.#perAddress.delete(address);
    else this.#perAddress.set(address, n);
  }

  #accept(ws: WebSocket, address: string): void {
    const codec = codecForSubprotocol(ws.protocol) ?? codecForSubprotocol(undefined);
    const { limits } = this.ctx.config;
    const session = new Session(
      toHex(randomBytes(16)),
      ws,
      codec!,
      address,
      limits.framesPerSecond * 2,
      this.ctx.now(),
    );
    this.#sessions.add(session);
    ws.on('pong', () => {
      session.lastAlive = Date.now();
    });
    const loginTimer = setTimeout(() => {
      if (!session.authed)
        this.#fail(session, new PmbError('login_required', 'Log in sooner', { fatal: true }));
    }, limits.loginTimeoutMs);
    loginTimer.unref?.();
    ws.on('message', (data, isBinary) => this.#onFrame(session, data, isBinary));
    ws.on('error', (err) => this.ctx.log.debug({ err, session: session.id }, 'socket error'));
    ws.on('close', () => {
      clearTimeout(loginTimer);
      session.closed = true;
      this.#sessions.delete(session);
      if (session.pendingLogin) {
        session.pendingLogin = undefined;
        this.ctx.pendingLogins.release(session.address);
      }
      this.ctx.delivery.detach(session);
      this.#release(address);
    });
  }

  #onFrame(session: Session, data: RawData, isBinary: boolean): void {
    session.lastAlive = Date.now();
    if (!this.#takeToken(session)) {
      this.#fail(
        session,
        new PmbError('rate_limited', undefined, { fatal: session.violations > MAX_VIOLATIONS }),
      );
      return;
    }
    let frame: unknown;
    try {
      const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
      frame = session.codec.decode(
        isBinary ? new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length) : bytes.toString('utf8'),
      );
    } catch (err) {
      this.#fail(
        session,
        err instanceof PmbError ? err : new PmbError('bad_frame', `Undecodable ${session.codec.name} frame`),
      );
      return;
    }
    if (frame === null || typeof frame !== 'object' || Array.isArray(frame)) {
      this.#fail(session, new PmbError('bad_frame', 'A frame is a map with a type'));
      return;
    }
    const raw = frame as { type?: unknown; id?: unknown };
    // Echoed only when it is a requestId: an error frame's id is one (no floats, nothing above 2^32 - 1).
    const id =
      typeof raw.id === 'number' && Number.isInteger(raw.id) && raw.id >= 0 && raw.id <= 0xffffffff
        ? raw.id
        : undefined;
    if (nestingDepth(frame, this.ctx.config.limits.maxDepth) > this.ctx.config.limits.maxDepth) {
      this.#fail(session, new PmbError('bad_frame', 'Frame nested too deeply'), id);
      return;
    }
    const type = typeof raw.type === 'string' ? raw.type : undefined;
    const route = type === undefined ? undefined : this.router.route(type);
    if (!route) {
      const known = type !== undefined && METHODS_BY_NAME.has(type);
      this.#fail(
        session,
        new PmbError(
          known ? 'bad_request' : 'unknown_type',
          `Unknown frame type ${JSON.stringify(type)}`.slice(0, 120),
        ),
        id,
      );
      return;
    }
    const parsed = route.method.request.safeParse(frame);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const where = issue?.path.join('.') || 'frame';
      this.#fail(
        session,
        new PmbError('bad_frame', `${route.method.name}: ${where}: ${issue?.message ?? 'invalid'}`),
        id,
      );
      return;
    }
    if (route.method !== Hello && session.version === undefined) {
      this.#fail(session, new PmbError('hello_required'), id);
      return;
    }
    if (route.method.auth && !session.authed) {
      this.#fail(session, new PmbError('login_required'), id);
      return;
    }
    const request = parsed.data as { type: string; id: number };
    const { type: _t, id: reqId, ...params } = request;
    Promise.resolve()
      .then(() => route.handler(params as never, session, this.ctx))
      .then(
        (result) => {
          session.violations = 0;
          session.send({ type: route.method.okType, id: reqId, ...result });
        },
        (err: unknown) => {
          const e = fromError(err);
          if (e.code === 'internal') this.ctx.log.error({ err, type: route.method.name }, 'handler failed');
          this.#reply(session, e, reqId);
          if (e.fatal) this.#close(session, e);
        },
      );
  }

  #takeToken(session: Session): boolean {
    const { framesPerSecond } = this.ctx.config.limits;
    const now = this.ctx.now();
    // A clock that steps back refills nothing (rather than draining the bucket until it catches up).
    session.tokens = Math.min(
      framesPerSecond * 2,
      session.tokens + (Math.max(0, now - session.lastRefill) / 1000) * framesPerSecond,
    );
    session.lastRefill = now;
    if (session.tokens < 1) return false;
    session.tokens -= 1;
    return true;
  }

  /** A rule was broken: answer with a typed error, close when it is fatal or keeps happening. */
  #fail(session: Session, err: PmbError, id?: number): void {
    session.violations++;
    this.#reply(session, err, id);
    if (err.fatal || session.violations > MAX_VIOLATIONS) this.#close(session, err);
  }

  #reply(session: Session, err: PmbError, id?: number): void {
    session.send({
      type: 'error',
      ...(id === undefined ? {} : { id }),
      code: err.code,
      message: err.message,
    });
  }

  #close(session: Session, err: PmbError): void {
    if (session.closed) return;
    const ws = session.socket;
    ws.close(err.closeCode, err.code);
    session.closed = true;
    const grace = setTimeout(() => ws.terminate(), CLOSE_GRACE_MS);
    grace.unref?.();
    ws.once('close', () => clearTimeout(grace));
  }

  /** Stop accepting, tell clients, and close every connection. */
  async close(): Promise<void> {
    this.#closing = true;
    if (this.#heartbeat) clearInterval(this.#heartbeat);
    for (const s of this.#sessions) {
      s.socket.close(1001, 'server shutting down');
    }
    const deadline = Date.now() + 2000;
    while (this.#sessions.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    for (const s of this.#sessions) s.socket.terminate();
    await new Promise<void>((resolve) => this.#wss.close(() => resolve()));
  }
}
