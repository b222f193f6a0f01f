/**
 * A load generator child of bench:compare (started with startChild from bench/lib/child.ts). It owns the
 * pair numbers [from, from + count) and, for them, PMB pairs and XMPP pairs on Prosody and ejabberd that
 * carry the very same sealed body bytes (base64 in XMPP). Arguments: one JSON object
 * { index, from, count, pmbUrl, prosodyPort, ejabberdPort, bodiesPerPair, pmbBatch }.
 *
 * Talks by lines: prints {"ready": true} at once; then every stdin line is a JSON command and gets exactly
 * one JSON answer line. Long commands answer {"accepted": id} at once and report their result later as an
 * event line {"event": "done", "id", ...} (so no command waits on the parent's 30 s answer timeout):
 *
 * - {"cmd": "setup", "id", "upTo"}: set up pairs until it has `upTo` of them (in batches, PMB then XMPP);
 *   done with {pairs, bodySizes}.
 * - {"cmd": "run", "id", "system", "pairs", "window", "messages", "sendMs", "drainMs"}: drive its first
 *   `pairs` pairs on that system; done with sent, delivered, complete, firstSendAt and lastDeliveryAt (on the
 *   shared clock performance.timeOrigin + performance.now()), the raw latencies in ms, and its own CPU
 *   seconds (process.cpuUsage delta) over the run.
 *
 * Exits when stdin ends, closing every connection.
 */
import { createInterface } from 'node:readline';
import { drive, inBatches, type Pair, type PmbPair, pmbPair } from '../relay/load.js';
import { XMPP_DOMAIN } from './servers.js';
import { type XmppSession, xmppLogin } from './xmpp.js';

export type SystemKey = 'pmb' | 'prosody' | 'ejabberd';

export interface LoadgenArgs {
  index: number;
  from: number;
  count: number;
  pmbUrl: string;
  prosodyPort: number;
  ejabberdPort: number;
  bodiesPerPair: number;
  /**
   * PMB pairs set up at once by this child: PMB allows 16 pending logins per client address
   * (pendingLoginsPerAddress), and every child connects from 127.0.0.1, so the parent divides 12 among them.
   */
  pmbBatch: number;
}

export interface RunCommand {
  system: SystemKey;
  pairs: number;
  window: number;
  messages: number;
  sendMs: number;
  drainMs: number;
}

export interface RunAnswer {
  sent: number;
  delivered: number;
  complete: boolean;
  /** Shared clock (performance.timeOrigin + performance.now()), ms. */
  firstSendAt: number;
  lastDeliveryAt: number;
  /** Send -> receipt, ms, one per delivered message. */
  latencies: number[];
  cpuS: number;
}

export interface SetupAnswer {
  pairs: number;
  bodySizes: number[];
  /** Seconds this child spent setting up its pairs on each server. */
  setupS: Record<SystemKey, number>;
}

/**
 * PMB's window is counted like XMPP's: a send is done when the recipient has it (XMPP has no server ack
 * without XEP-0198), and also not before PMB's own `send.ok`.
 */
export function receiptWindowed(p: PmbPair): Pair {
  const waiting: (() => void)[] = [];
  const pair: Pair = {
    onDelivered: () => {},
    async send() {
      const received = new Promise<void>((resolve) => waiting.push(resolve));
      await Promise.all([p.send(), received]);
    },
  };
  p.onDelivered = (ms) => {
    waiting.shift()?.();
    pair.onDelivered(ms);
  };
  return pair;
}

/**
 * Setup only (never timed): a registration or login that breaks is tried again on a new connection, at most
 * 3 times, each retry said on stderr with the server's answer. Seen once here: during profile 2's setup one
 * peer closed a fresh stream with `not-authorized` before answering a registration.
 */
async function xmppLoginRetrying(server: string, port: number, user: string): Promise<XmppSession> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await xmppLogin(port, XMPP_DOMAIN, user, 'bench-password', 'bench', { existingOk: attempt > 1 });
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      if (attempt >= 3) throw new Error(`${server}: ${why}`);
      process.stderr.write(`loadgen: ${server}: ${why}; trying again (${attempt}/3)\n`);
    }
  }
}

/** A sender and a recipient on an XMPP server; each message carries one of `bodies`, base64, in <body>. */
export async function xmppPair(
  server: string,
  port: number,
  user: string,
  bodies: Uint8Array[],
): Promise<Pair & { close(): void }> {
  const recipient = await xmppLoginRetrying(server, port, `r${user}`);
  const sender = await xmppLoginRetrying(server, port, `s${user}`);
  const stanzas = bodies.map((b) => `<body>${Buffer.from(b).toString('base64')}</body></message>`);
  const open = new Map<string, { t: number; resolve: () => void }>();
  let next = 0;
  const pair = {
    onDelivered: (_ms: number) => {},
    send() {
      const id = `m${next}`;
      const stanza = stanzas[next++ % stanzas.length] as string;
      return new Promise<void>((resolve) => {
        open.set(id, { t: performance.now(), resolve });
        sender.send(`<message to='${recipient.jid}' id='${id}' type='chat'>${stanza}`);
      });
    },
    close() {
      sender.close();
      recipient.close();
    },
  };
  recipient.onMessage = (id) => {
    const o = open.get(id);
    if (!o) return;
    open.delete(id);
    pair.onDelivered(performance.now() - o.t);
    o.resolve();
  };
  return pair;
}

const now = () => performance.timeOrigin + performance.now();

/**
 * Wraps a pair so this process sees every delivery drive() counts: drive() counts deliveries in the order
 * they arrive until it settles, so the first `delivered` entries recorded here are exactly its own.
 */
function recorded(p: Pair, rec: { lat: number[]; at: number[]; firstSend: number }): Pair {
  const w: Pair = {
    onDelivered: () => {},
    send() {
      if (rec.firstSend === 0) rec.firstSend = now();
      return p.send();
    },
  };
  p.onDelivered = (ms) => {
    rec.lat.push(ms);
    rec.at.push(now());
    w.onDelivered(ms);
  };
  return w;
}

async function main(): Promise<void> {
  const args = JSON.parse(process.argv[2] ?? '{}') as LoadgenArgs;
  // Unique per child and per bench run: several sets of children register on the same servers.
  const tag = `${args.index}x${Math.random().toString(36).slice(2, 8)}`;
  const pairs: Record<SystemKey, Pair[]> = { pmb: [], prosody: [], ejabberd: [] };
  const closers: { close(): void }[] = [];
  const bodySizes: number[] = [];
  const setupS: Record<SystemKey, number> = { pmb: 0, prosody: 0, ejabberd: 0 };
  const say = (v: unknown) => process.stdout.write(`${JSON.stringify(v)}\n`);

  async function setup(upTo: number): Promise<SetupAnswer> {
    const have = pairs.pmb.length;
    const n = Math.min(upTo, args.count) - have;
    if (n > 0) {
      let t = performance.now();
      const lap = (k: SystemKey) => {
        setupS[k] += (performance.now() - t) / 1000;
        t = performance.now();
      };
      const pmb = await inBatches(n, args.pmbBatch, (i) =>
        pmbPair(args.pmbUrl, args.from + have + i, args.bodiesPerPair),
      );
      for (const p of pmb) closers.push(p.sender, p.recipient);
      const bodies = pmb.map((p) => p.bodies.map((e) => e.body));
      for (const b of bodies.flat()) bodySizes.push(b.length);
      lap('pmb');
      const user = (i: number) => `${args.from + have + i}x${tag}`;
      const prosody = await inBatches(n, 10, (i) =>
        xmppPair('Prosody', args.prosodyPort, user(i), bodies[i]!),
      );
      lap('prosody');
      const ejabberd = await inBatches(n, 10, (i) =>
        xmppPair('ejabberd', args.ejabberdPort, user(i), bodies[i]!),
      );
      lap('ejabberd');
      closers.push(...prosody, ...ejabberd);
      pairs.pmb.push(...pmb.map(receiptWindowed));
      pairs.prosody.push(...prosody);
      pairs.ejabberd.push(...ejabberd);
    }
    return { pairs: pairs.pmb.length, bodySizes, setupS };
  }

  async function run(c: RunCommand): Promise<RunAnswer> {
    const use = pairs[c.system].slice(0, c.pairs);
    if (use.length < c.pairs)
      throw new Error(`loadgen ${args.index}: has ${use.length} pairs, asked ${c.pairs}`);
    const rec = { lat: [] as number[], at: [] as number[], firstSend: 0 };
    const cpu0 = process.cpuUsage();
    const r = await drive(
      use.map((p) => recorded(p, rec)),
      c,
    );
    const cpu = process.cpuUsage(cpu0);
    return {
      sent: r.sent,
      delivered: r.delivered,
      complete: r.complete,
      firstSendAt: rec.firstSend,
      lastDeliveryAt: r.delivered > 0 ? (rec.at[r.delivered - 1] as number) : rec.firstSend,
      latencies: rec.lat.slice(0, r.delivered),
      cpuS: (cpu.user + cpu.system) / 1e6,
    };
  }

  say({ ready: true, index: args.index, from: args.from, count: args.count });
  // One command at a time, in order: a run must not overlap another run or a setup.
  let queue = Promise.resolve();
  const lines = createInterface({ input: process.stdin });
  lines.on('line', (line) => {
    const cmd = JSON.parse(line) as { cmd: string; id: number; upTo?: number } & RunCommand;
    say({ accepted: cmd.id });
    queue = queue.then(async () => {
      try {
        const result = cmd.cmd === 'setup' ? await setup(cmd.upTo ?? 0) : await run(cmd);
        say({ event: 'done', id: cmd.id, ...result });
      } catch (err) {
        say({ event: 'done', id: cmd.id, error: String((err as Error).stack ?? err) });
      }
    });
  });
  lines.on('close', () => {
    void queue.finally(() => {
      for (const c of closers) c.close();
      process.exit(0);
    });
  });
}

await main();
