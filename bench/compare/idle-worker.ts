/**
 * Child of bench/compare/idle.ts: opens its share of idle, authenticated connections to one server from its
 * own source address (127.0.X.Y), holds them, pings them, closes them. Commands come on stdin, one JSON line
 * each; each is answered at once with {"ok":true} (bench/lib/child.ts waits 30 s at most for an answer) and
 * its outcome follows as an event line {"event":"done","id":N,...}.
 *
 * PMB identities (an OpenPGP key each, ~10 ms of CPU) are generated on `gen` and kept for the child's life:
 * every PMB run (a fresh server each time) registers the same keys again.
 */
import { createInterface } from 'node:readline';
import WebSocket from 'ws';
import { PmbClient, type WebSocketFactory } from '../../src/client/index.js';
import { generateIdentity, type Identity } from '../../src/crypto/index.js';
import { XMPP_DOMAIN } from './servers.js';
import { type XmppSession, xmppLogin } from './xmpp.js';

export type WorkerCommand =
  | { op: 'gen'; id: number; count: number }
  | {
      op: 'open';
      id: number;
      kind: 'pmb' | 'xmpp';
      /** PMB: the ws:// URL. */
      url?: string;
      /** XMPP: the c2s port on 127.0.0.1. */
      port?: number;
      /** Index of this child's first account (names are unique per server run). */
      first: number;
      count: number;
      localAddress: string;
      parallel: number;
      /** Part of every XMPP user name. */
      tag: string;
    }
  | { op: 'check'; id: number; parallel: number }
  | { op: 'close'; id: number };

export interface OpenOutcome {
  opened: number;
  failed: number;
  /** The first few distinct errors. */
  errors: string[];
  ms: number;
}

export interface CheckOutcome {
  /** Connections whose socket is still open. */
  open: number;
  /** Connections that answered a ping. */
  answered: number;
  errors: string[];
}

interface Held {
  ping(): Promise<void>;
  isOpen(): boolean;
  close(): void;
}

const identities: Identity[] = [];
let held: Held[] = [];

const say = (v: unknown) => process.stdout.write(`${JSON.stringify(v)}\n`);

function noteError(errors: string[], err: unknown): void {
  const text = err instanceof Error ? err.message : String(err);
  if (errors.length < 5 && !errors.includes(text)) errors.push(text);
}

/** Run fn(0..n-1) with at most `parallel` in flight; stop starting new ones once `stop()` says so. */
async function pool(n: number, parallel: number, fn: (i: number) => Promise<void>, stop = () => false) {
  let next = 0;
  const runner = async () => {
    while (next < n && !stop()) await fn(next++);
  };
  await Promise.all(Array.from({ length: Math.min(parallel, n) }, runner));
}

/** The `ws` WebSocket bound to a source address, with the (url, protocols) constructor the SDK calls. */
function wsFrom(localAddress: string): WebSocketFactory {
  class BoundWebSocket extends WebSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols, { localAddress, perMessageDeflate: false });
    }
  }
  return BoundWebSocket as unknown as WebSocketFactory;
}

async function openPmb(url: string, nick: string, identity: Identity, localAddress: string): Promise<Held> {
  const client = await PmbClient.connect({ url, WebSocket: wsFrom(localAddress), identity, device: 'idle' });
  try {
    await client.register(nick);
    await client.login();
  } catch (err) {
    client.conn.close();
    throw err;
  }
  return {
    async ping() {
      await client.ping();
    },
    isOpen: () => !client.conn.closed,
    close: () => client.conn.close(),
  };
}

let pings = 0;

async function openXmpp(port: number, user: string, localAddress: string): Promise<Held> {
  const session: XmppSession = await xmppLogin(port, XMPP_DOMAIN, user, 'idle-password', 'idle', {
    localAddress,
  });
  let open = true;
  session.socket.once('close', () => {
    open = false;
  });
  return {
    ping() {
      // XEP-0199 to the server; the answer is found by its id in the raw stream (xmpp.ts parses no XML).
      const id = `p${pings++}`;
      session.send(`<iq type='get' id='${id}' to='${XMPP_DOMAIN}'><ping xmlns='urn:xmpp:ping'/></iq>`);
      return new Promise<void>((resolve, reject) => {
        let seen = '';
        const done = (err?: Error) => {
          clearTimeout(timer);
          session.socket.off('data', onData);
          session.socket.off('close', onClose);
          if (err) reject(err);
          else resolve();
        };
        const onData = (chunk: string) => {
          seen = (seen + chunk).slice(-4096);
          if (new RegExp(`id=['"]${id}['"]`).test(seen)) done();
        };
        const onClose = () => done(new Error(`${user}: closed before answering a ping`));
        const timer = setTimeout(() => done(new Error(`${user}: no ping answer in 30 s`)), 30_000);
        session.socket.on('data', onData);
        session.socket.once('close', onClose);
      });
    },
    isOpen: () => open && !session.socket.destroyed,
    close: () => session.close(),
  };
}

async function handle(cmd: WorkerCommand): Promise<Record<string, unknown>> {
  switch (cmd.op) {
    case 'gen': {
      const t0 = performance.now();
      while (identities.length < cmd.count) identities.push((await generateIdentity()).identity);
      return { identities: identities.length, ms: performance.now() - t0 };
    }
    case 'open': {
      const t0 = performance.now();
      const out: OpenOutcome = { opened: 0, failed: 0, errors: [], ms: 0 };
      let failedInARow = 0;
      await pool(
        cmd.count,
        cmd.parallel,
        async (i) => {
          const n = cmd.first + i;
          try {
            const h =
              cmd.kind === 'pmb'
                ? await openPmb(cmd.url!, `idle${n}`, identities[i]!, cmd.localAddress)
                : await openXmpp(cmd.port!, `idle${n}x${cmd.tag}`, cmd.localAddress);
            held.push(h);
            out.opened++;
            failedInARow = 0;
          } catch (err) {
            out.failed++;
            failedInARow++;
            noteError(out.errors, err);
          }
        },
        // A server that stopped answering: do not spend minutes on timeouts.
        () => failedInARow >= 200,
      );
      out.ms = performance.now() - t0;
      return { ...out };
    }
    case 'check': {
      const out: CheckOutcome = { open: held.filter((h) => h.isOpen()).length, answered: 0, errors: [] };
      await pool(held.length, cmd.parallel, async (i) => {
        try {
          await held[i]!.ping();
          out.answered++;
        } catch (err) {
          noteError(out.errors, err);
        }
      });
      return { ...out };
    }
    case 'close': {
      const all = held;
      held = [];
      for (const h of all) h.close();
      const deadline = Date.now() + 10_000;
      while (all.some((h) => h.isOpen()) && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 100));
      return { closed: all.length, stillOpen: all.filter((h) => h.isOpen()).length };
    }
  }
}

say({ pid: process.pid });
createInterface({ input: process.stdin })
  .on('line', (line) => {
    const cmd = JSON.parse(line) as WorkerCommand;
    say({ ok: true });
    handle(cmd).then(
      (r) => say({ event: 'done', id: cmd.id, ...r }),
      (err: unknown) =>
        say({ event: 'done', id: cmd.id, error: err instanceof Error ? err.message : String(err) }),
    );
  })
  .on('close', () => {
    for (const h of held) h.close();
    setTimeout(() => process.exit(0), 500).unref();
  });
