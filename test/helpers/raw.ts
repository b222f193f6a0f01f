import WebSocket from 'ws';
import { CODECS } from '../../src/protocol/codec.js';
import { PROTOCOL_VERSION } from '../../src/protocol/version.js';

export type Frame = Record<string, unknown> & { type: string };

/** A bare WebSocket speaking PMB frames, for tests that must send what a well-behaved client never would. */
export class RawPeer {
  readonly frames: Frame[] = [];
  closeInfo: { code: number; reason: string } | undefined;
  #waiters: (() => void)[] = [];
  readonly codec;

  private constructor(
    readonly ws: WebSocket,
    encoding: 'cbor' | 'json',
  ) {
    this.codec = CODECS[encoding];
    ws.on('message', (data: Buffer, isBinary) => {
      this.frames.push(this.codec.decode(isBinary ? new Uint8Array(data) : data.toString('utf8')) as Frame);
      this.#wake();
    });
    ws.on('close', (code, reason) => {
      this.closeInfo = { code, reason: reason.toString() };
      this.#wake();
    });
  }

  static async open(url: string, encoding: 'cbor' | 'json' = 'cbor', protocol?: string): Promise<RawPeer> {
    const ws = new WebSocket(url, protocol ?? CODECS[encoding].subprotocol);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    return new RawPeer(ws, encoding);
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  send(frame: unknown): void {
    this.ws.send(this.codec.encode(frame));
  }

  sendRaw(data: Uint8Array | string): void {
    this.ws.send(data);
  }

  /** Next frame matching pred (removing it from the buffer). */
  async next(pred: (f: Frame) => boolean = () => true, ms = 5000): Promise<Frame> {
    const deadline = Date.now() + ms;
    for (;;) {
      const i = this.frames.findIndex(pred);
      if (i >= 0) return this.frames.splice(i, 1)[0] as Frame;
      if (this.closeInfo)
        throw new Error(`closed (${this.closeInfo.code} ${this.closeInfo.reason}) before the frame came`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('timed out waiting for a frame');
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Send a request and wait for the frame answering it. */
  async request(frame: Frame & { id: number }): Promise<Frame> {
    this.send(frame);
    return this.next((f) => f.id === frame.id);
  }

  async hello(): Promise<Frame> {
    return this.request({ type: 'hello', id: 0, versions: [PROTOCOL_VERSION] });
  }

  async closed(ms = 5000): Promise<{ code: number; reason: string }> {
    const deadline = Date.now() + ms;
    while (!this.closeInfo) {
      if (Date.now() > deadline) throw new Error('connection not closed');
      await new Promise((r) => setTimeout(r, 10));
    }
    return this.closeInfo;
  }

  close(): void {
    this.ws.close();
  }
}
