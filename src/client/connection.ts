import { CODECS, type Codec } from '../protocol/codec.js';
import { isErrorCode, PmbError } from '../protocol/errors.js';
import {
  Deliver,
  type DeliverFrame,
  ErrorFrame,
  Hello,
  type Method,
  type ParamsOf,
  type ResponseOf,
  type ResultOf,
  Synced,
  type SyncedFrame,
} from '../protocol/frames.js';
import { DEFAULT_ENCODING, type EncodingName, PROTOCOL_VERSIONS } from '../protocol/version.js';

/** The standard (WHATWG) WebSocket surface: the browser's, Node 22's, or the `ws` package's. */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  readonly protocol: string;
  send(data: Uint8Array | string): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: 'open' | 'close' | 'error' | 'message', listener: (ev: never) => void): void;
}
export type WebSocketFactory = new (url: string, protocols?: string | string[]) => WebSocketLike;

export interface ConnectOptions {
  url: string;
  WebSocket?: WebSocketFactory;
  encoding?: EncodingName;
  /** Per request, ms. */
  timeoutMs?: number;
  agent?: string;
}

export interface ConnectionEvents {
  deliver?: (frame: DeliverFrame) => void;
  synced?: (frame: SyncedFrame) => void;
  close?: (code: number, reason: string) => void;
  /** An error frame that answers no request (the server says the connection broke a rule). */
  error?: (err: PmbError) => void;
}

interface Waiting {
  method: Method;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
  timer: ReturnType<typeof setTimeout>;
}

/** One WebSocket to a PMB server: typed requests with ids, validated responses, pushes as events. */
export class Connection {
  readonly #ws: WebSocketLike;
  readonly #codec: Codec;
  readonly #timeoutMs: number;
  readonly #waiting = new Map<number, Waiting>();
  #nextId = 1;
  #closed = false;
  events: ConnectionEvents = {};
  hello: ResultOf<typeof Hello> | undefined;

  private constructor(
    ws: WebSocketLike,
    codec: Codec,
    timeoutMs: number,
    /** The URL this connection was opened to. */
    readonly url: string,
  ) {
    this.#ws = ws;
    this.#codec = codec;
    this.#timeoutMs = timeoutMs;
    ws.addEventListener('message', (ev: { data: unknown }) => this.#onMessage(ev.data));
    ws.addEventListener('close', (ev: { code: number; reason: string }) => this.#onClose(ev.code, ev.reason));
  }

  /** Open the socket and say hello. */
  static async open(opts: ConnectOptions): Promise<Connection> {
    const WS = opts.WebSocket ?? (globalThis as { WebSocket?: WebSocketFactory }).WebSocket;
    if (!WS) throw new Error('No WebSocket implementation: pass one in ConnectOptions.WebSocket');
    const codec = CODECS[opts.encoding ?? DEFAULT_ENCODING];
    const ws = new WS(opts.url, codec.subprotocol);
    ws.binaryType = 'arraybuffer';
    await new Promise<void>((resolve, reject) => {
      ws.addEventListener('open', () => resolve());
      ws.addEventListener('error', () =>
        reject(new PmbError('unavailable', `Cannot connect to ${opts.url}`)),
      );
      ws.addEventListener('close', (ev: { code: number; reason: string }) =>
        reject(new PmbError('unavailable', `Connection to ${opts.url} closed (${ev.code} ${ev.reason})`)),
      );
    });
    const conn = new Connection(ws, codec, opts.timeoutMs ?? 30_000, opts.url);
    conn.hello = await conn.request(Hello, {
      versions: [...PROTOCOL_VERSIONS],
      ...(opts.agent ? { agent: opts.agent } : {}),
    });
    return conn;
  }

  get closed(): boolean {
    return this.#closed;
  }

  request<M extends Method>(method: M, params: ParamsOf<M>): Promise<ResultOf<M>> {
    if (this.#closed) return Promise.reject(new PmbError('unavailable', 'The connection is closed'));
    const id = this.#nextId++;
    return new Promise<ResultOf<M>>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiting.delete(id);
        reject(new PmbError('timeout', `${method.name} got no answer in ${this.#timeoutMs} ms`));
      }, this.#timeoutMs);
      this.#waiting.set(id, { method, resolve: resolve as (v: unknown) => void, reject, timer });
      this.#ws.send(this.#codec.encode({ type: method.name, id, ...params }));
    });
  }

  close(code = 1000, reason = 'bye'): void {
    if (this.#closed) return;
    this.#ws.close(code, reason);
  }

  #onMessage(data: unknown): void {
    let frame: { type?: unknown; id?: unknown };
    try {
      const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : (data as Uint8Array | string);
      frame = this.#codec.decode(bytes) as typeof frame;
    } catch {
      this.#protocolError('The server sent an undecodable frame');
      return;
    }
    if (frame === null || typeof frame !== 'object') {
      this.#protocolError('The server sent a non-map frame');
      return;
    }
    if (frame.type === Deliver.name) {
      const f = Deliver.schema.safeParse(frame);
      if (!f.success) {
        this.#protocolError('The server sent a malformed deliver frame');
        return;
      }
      this.events.deliver?.(f.data);
      return;
    }
    if (frame.type === Synced.name) {
      const f = Synced.schema.safeParse(frame);
      if (f.success) this.events.synced?.(f.data);
      return;
    }
    const waiting = typeof frame.id === 'number' ? this.#waiting.get(frame.id) : undefined;
    if (frame.type === ErrorFrame.name) {
      const f = ErrorFrame.schema.safeParse(frame);
      const err = f.success
        ? new PmbError(isErrorCode(f.data.code) ? f.data.code : 'internal', f.data.message)
        : new PmbError('internal', 'Malformed error frame');
      if (waiting) this.#settle(frame.id as number, waiting, () => waiting.reject(err));
      else this.events.error?.(err);
      return;
    }
    if (!waiting) return;
    const parsed = waiting.method.response.safeParse(frame);
    this.#settle(frame.id as number, waiting, () => {
      if (!parsed.success)
        waiting.reject(new PmbError('bad_frame', `Malformed ${waiting.method.okType} from server`));
      else {
        const { type: _t, id: _i, ...result } = parsed.data as ResponseOf<Method>;
        waiting.resolve(result);
      }
    });
  }

  #settle(id: number, waiting: Waiting, fn: () => void): void {
    clearTimeout(waiting.timer);
    this.#waiting.delete(id);
    fn();
  }

  #protocolError(message: string): void {
    this.events.error?.(new PmbError('bad_frame', message));
  }

  #onClose(code: number, reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const [id, w] of this.#waiting) {
      clearTimeout(w.timer);
      w.reject(new PmbError('unavailable', `Connection closed (${code}${reason ? ` ${reason}` : ''})`));
      this.#waiting.delete(id);
    }
    this.events.close?.(code, reason);
  }
}
