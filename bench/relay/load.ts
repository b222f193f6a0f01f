/**
 * The load generator: pairs of connections (sender -> recipient) on either server, and one driver that
 * pushes messages through them with a window of unacknowledged sends per sender.
 */
import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';
import { type Connection, PmbClient, type WebSocketFactory } from '../../src/client/index.js';
import { generateIdentity } from '../../src/crypto/index.js';
import { encodeCbor } from '../../src/protocol/codec.js';
import { Ack, type DeliverFrame, type Envelope } from '../../src/protocol/frames.js';
import { type Latency, latency } from './stats.js';

/** One sender -> recipient path. */
export interface Pair {
  /** Send the next message; resolves when the sender's side has its ack (PMB: durable `send.ok`). */
  send(): Promise<void>;
  /** Set by the driver: called once per message the recipient receives, with send -> receipt ms. */
  onDelivered: (ms: number) => void;
}

export interface DriveOptions {
  /** Messages in all, split evenly over the pairs. */
  messages: number;
  /** Unacknowledged sends per sender. */
  window: number;
  /** No new send starts after this long. */
  sendMs: number;
  /** After sending stops, wait at most this long for the last deliveries. */
  drainMs: number;
}

export interface DriveResult {
  sent: number;
  delivered: number;
  /** From the first send to the last delivery. */
  elapsedMs: number;
  msgsPerS: number;
  latency: Latency;
  /** false when the drain timed out with messages still undelivered. */
  complete: boolean;
}

/** Push messages through the pairs; throughput counts messages that reached their recipient. */
export function drive(pairs: Pair[], opts: DriveOptions): Promise<DriveResult> {
  const quota = Math.ceil(opts.messages / pairs.length);
  const lat = new Float64Array(quota * pairs.length);
  const t0 = performance.now();
  const stopSending = t0 + opts.sendMs;
  let sent = 0;
  let delivered = 0;
  let inflight = 0;
  let last = t0;

  return new Promise<DriveResult>((resolve, reject) => {
    let settled = false;
    const finish = (complete: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(drainTimer);
      const elapsedMs = last - t0;
      resolve({
        sent,
        delivered,
        elapsedMs,
        msgsPerS: elapsedMs > 0 ? (delivered / elapsedMs) * 1000 : 0,
        latency: latency(lat.subarray(0, delivered)),
        complete,
      });
    };
    const fail = (err: unknown) => {
      if (settled) return;
      settled = true;
      clearTimeout(drainTimer);
      reject(err);
    };
    const drainTimer = setTimeout(() => finish(false), opts.sendMs + opts.drainMs);
    const sendingDone = () =>
      inflight === 0 && (sent === quota * pairs.length || performance.now() >= stopSending);
    const check = () => {
      if (delivered >= sent && sendingDone()) finish(true);
    };

    pairs.forEach((pair) => {
      let mine = 0;
      let open = 0;
      const pump = () => {
        while (!settled && open < opts.window && mine < quota && performance.now() < stopSending) {
          mine++;
          open++;
          sent++;
          inflight++;
          pair.send().then(() => {
            open--;
            inflight--;
            pump();
            check();
          }, fail);
        }
      };
      pair.onDelivered = (ms) => {
        if (settled) return;
        lat[delivered++] = ms;
        last = performance.now();
        check();
      };
      pump();
    });
  });
}

const tag = randomBytes(4).toString('hex');
let counter = 0;
/** Envelope ids are unique per sender across runs: the server drops a repeated (sender, id). */
const nextId = () => `${tag}-${(counter++).toString(36)}`;

const NodeWebSocket = WebSocket as unknown as WebSocketFactory;

/** Register and log in a fresh account; `deliver` frames go to onDeliver and are acked cumulatively. */
export async function pmbUser(url: string, nick: string, onDeliver?: (f: DeliverFrame) => void) {
  const { identity } = await generateIdentity();
  const client = await PmbClient.connect({ url, WebSocket: NodeWebSocket, identity, device: 'bench' });
  // Counted raw: envelope ids are fresh, body ids are not, so decrypting would reject every message.
  autoAck(client.conn, onDeliver);
  await client.register(nick);
  await client.login();
  return client;
}

/** Cumulative acks, one in flight at a time, as the SDK does. */
function autoAck(conn: Connection, onDeliver?: (f: DeliverFrame) => void): void {
  let wanted = 0;
  let acked = 0;
  let acking = false;
  const flush = async () => {
    acking = true;
    try {
      while (acked < wanted && !conn.closed) {
        const seq = wanted;
        await conn.request(Ack, { seq });
        acked = seq;
      }
    } catch {
      // Connection closed: the bench is over for it.
    } finally {
      acking = false;
    }
  };
  conn.events.deliver = (f) => {
    onDeliver?.(f);
    if (f.seq > wanted) wanted = f.seq;
    if (!acking) void flush();
  };
}

export interface PmbPair extends Pair {
  sender: PmbClient;
  recipient: PmbClient;
  /** The sealed envelopes this pair reuses (fresh id per send). */
  bodies: Envelope[];
}

/** A sender and a recipient account, and `bodies` real OpenPGP messages sealed before any timing. */
export async function pmbPair(url: string, n: number, bodies: number): Promise<PmbPair> {
  const sentAt = new Map<string, number>();
  const pair = {} as PmbPair;
  pair.onDelivered = () => {};
  const recipient = await pmbUser(url, `r${n}`, (f) => {
    const t = sentAt.get(f.envelope.id);
    if (t === undefined) return;
    sentAt.delete(f.envelope.id);
    pair.onDelivered(performance.now() - t);
  });
  // The sender's own copy is kept for its other devices; if one is pushed back here, it is only acked.
  const sender = await pmbUser(url, `s${n}`);
  const contact = await sender.lookup(recipient.identity.fingerprint);
  const sealed: Envelope[] = [];
  for (let k = 0; k < bodies; k++) {
    sealed.push(await sender.seal([contact.key], sampleText(n, k)));
  }
  let i = 0;
  return Object.assign(pair, {
    sender,
    recipient,
    bodies: sealed,
    async send() {
      const envelope = { ...(sealed[i++ % sealed.length] as Envelope), id: nextId() };
      sentAt.set(envelope.id, performance.now());
      await sender.sendEnvelope(envelope);
    },
  });
}

/** A short chat line of varying length. */
function sampleText(pair: number, k: number): string {
  const words = 'but soft what light through yonder window breaks it is the east and juliet is the sun';
  return `${pair}.${k} ${words.slice(0, 20 + ((k * 37) % 70))}`;
}

export async function openWs(url: string): Promise<WebSocket> {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return ws;
}

export interface RawPair extends Pair {
  close(): void;
}

/**
 * The same bytes PMB's sender puts on the wire (a CBOR `send` frame with the same envelope), behind a
 * 4-byte message number; the recipient answers each with its 4-byte number, relayed back as the ack.
 */
export async function rawPair(url: string, n: number, envelopes: Envelope[]): Promise<RawPair> {
  const recv = await openWs(`${url}/?pair=${n}&role=recv`);
  const send = await openWs(`${url}/?pair=${n}&role=send`);
  const frames = envelopes.map((e, k) => encodeCbor({ type: 'send', id: k + 1, envelope: e }));
  const sentAt = new Map<number, number>();
  const waiting = new Map<number, () => void>();
  let next = 0;
  const pair: RawPair = {
    onDelivered: () => {},
    send() {
      const seq = next++ >>> 0;
      const body = frames[seq % frames.length] as Uint8Array;
      const frame = Buffer.allocUnsafe(4 + body.length);
      frame.writeUInt32BE(seq, 0);
      frame.set(body, 4);
      sentAt.set(seq, performance.now());
      return new Promise<void>((resolve) => {
        waiting.set(seq, resolve);
        send.send(frame);
      });
    },
    close() {
      send.terminate();
      recv.terminate();
    },
  };
  recv.on('message', (data: Buffer) => {
    const seq = data.readUInt32BE(0);
    const t = sentAt.get(seq);
    if (t !== undefined) {
      sentAt.delete(seq);
      pair.onDelivered(performance.now() - t);
    }
    recv.send(data.subarray(0, 4));
  });
  send.on('message', (data: Buffer) => {
    const seq = data.readUInt32BE(0);
    waiting.get(seq)?.();
    waiting.delete(seq);
  });
  return pair;
}

/** Run fn for 0..n-1, at most `parallel` at a time. */
export async function inBatches<T>(n: number, parallel: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = [];
  for (let i = 0; i < n; i += parallel) {
    const chunk = Array.from({ length: Math.min(parallel, n - i) }, (_, j) => fn(i + j));
    out.push(...(await Promise.all(chunk)));
  }
  return out;
}
