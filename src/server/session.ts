import type { WebSocket } from 'ws';
import type { Codec } from '../protocol/codec.js';

export interface PendingLogin {
  fingerprint: string;
  device: string;
  secret: Uint8Array;
  expires: number;
  /** Set when the identity has no account here yet: the invite to spend (empty with open registration). */
  invite?: string;
}

/** One WebSocket connection and what it has proven so far. */
export class Session {
  readonly id: string;
  readonly socket: WebSocket;
  readonly codec: Codec;
  readonly address: string;
  version: number | undefined;
  pendingLogin: PendingLogin | undefined;
  /** Set once login succeeded. */
  account: string | undefined;
  device: string | undefined;
  closed = false;

  // Delivery state: what was pushed and not yet acknowledged (seqs in order).
  pushed = 0;
  inflight: number[] = [];
  /** true once everything stored was pushed and `synced` was sent: new mail is pushed straight away. */
  live = false;
  syncedSent = false;
  /** Highest seq acknowledged and not yet written, and the queued lazy write that will write it (if any). */
  cursorToSave = 0;
  cursorSave: Promise<void> | undefined;

  /** When the peer last sent anything (a frame or a pong), Date.now() ms: the heartbeat judges silence by it. */
  lastAlive = Date.now();

  // Token bucket for the frame rate limit.
  tokens: number;
  lastRefill: number;
  violations = 0;

  constructor(id: string, socket: WebSocket, codec: Codec, address: string, burst: number, now: number) {
    this.id = id;
    this.socket = socket;
    this.codec = codec;
    this.address = address;
    this.tokens = burst;
    this.lastRefill = now;
  }

  get authed(): boolean {
    return this.account !== undefined;
  }

  send(frame: unknown): void {
    if (this.closed) return;
    this.socket.send(this.codec.encode(frame));
  }
}
