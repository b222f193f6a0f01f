import type { PmbClient } from '../../src/client/index.js';
import type { PublicIdentity } from '../../src/crypto/index.js';
import { Ack, type Envelope } from '../../src/protocol/frames.js';
import { type ProcessNetwork, type ProcessNode, startNetwork } from '../helpers/network.js';
import { connectUser, newIdentity } from '../helpers/servers.js';
import { until } from '../helpers/wait.js';

/**
 * The kill -9 scenario shared by test/chaos/*.test.ts (a few cycles) and `npm run chaos` (many): users on
 * real `pmb serve` processes send pipelined messages without pause while a server is killed with SIGKILL at
 * random moments and restarted on its data dir; clients reconnect, resend what was not acknowledged (same
 * envelope, same id) and go on. Afterwards every acknowledged message must have reached every recipient
 * once, in order per sender, with the text that was sent, never stored twice (shown under two mailbox
 * positions), and no mailbox position may come twice on one connection.
 */
export interface KillScenarioOptions {
  /** 1: three users on one server. 2: alice on s1 and bob on s2 writing to each other; kills alternate. */
  servers: 1 | 2;
  cycles: number;
  /** Stop killing after this long (the drain and the checks come after it). */
  timeCapMs?: number;
  /** Sends in flight per user (default 8). */
  window?: number;
  /** Load between restart and the next kill, ms, drawn uniformly (default 150..600). */
  loadMs?: [number, number];
  seed?: number;
  /** How long the final drain may take (default 60 s). */
  drainMs?: number;
  log?: (line: string) => void;
}

export interface KillScenarioResult {
  seed: number;
  cycles: number;
  /** Messages sealed and sent at least once; all of them are acknowledged after the drain. */
  sent: number;
  acked: number;
  /** Deliveries expected (acked message x recipient) and the ones that arrived. */
  expected: number;
  received: number;
  /** Acknowledged messages a recipient never got: "id -> nick". */
  lost: string[];
  /** A message stored twice: shown under two mailbox positions. */
  duplicated: string[];
  /** The same mailbox position pushed twice on one connection. */
  pushedTwice: string[];
  /** Out of order per sender, or a text that differs from what was sent. */
  wrong: string[];
  /** Messages pushed again on a new connection because the ack had not been answered (allowed). */
  redelivered: number;
  /**
   * Messages pushed again on a new connection although their ack had been answered: must be 0, an ack is
   * answered once the cursor is on disk (docs/protocol.md, 10.4).
   */
  pushedAfterAck: number;
  restartMs: number[];
  elapsedMs: number;
}

interface Sent {
  id: string;
  index: number;
  text: string;
  to: string[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A small seeded PRNG (mulberry32): a failing run can be replayed with its seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A user that stays the same person across connections: what it sent, what it was shown. */
class ChaosUser {
  identity!: Awaited<ReturnType<typeof newIdentity>>;
  peers: { nick: string; key: PublicIdentity }[] = [];
  client: PmbClient | undefined;
  /** Sealed, not yet acknowledged, in send order: resent first on every new connection. */
  outstanding: Envelope[] = [];
  readonly sent: Sent[] = [];
  readonly ackedIds = new Set<string>();
  /** id -> the mailbox seq it was first shown under, and the text. */
  readonly shown = new Map<string, { seq: number; text: string | undefined; from: string }>();
  readonly shownSeqs = new Set<number>();
  /** Ids in the order they were first shown. */
  readonly shownOrder: string[] = [];
  /** Highest seq whose ack the server answered. */
  ackConfirmed = 0;
  readonly problems = { duplicated: [] as string[], pushedTwice: [] as string[] };
  redelivered = 0;
  pushedAfterAck = 0;
  generating = true;
  window = 8;
  stopped = false;
  #next = 0;
  #sealing: Promise<unknown> = Promise.resolve();
  #loop: Promise<void> | undefined;

  constructor(
    readonly nick: string,
    public node: ProcessNode,
  ) {}

  get address(): string {
    return `${this.nick}@${this.node.domain}`;
  }

  async register(): Promise<void> {
    this.identity = await newIdentity();
    const c = await connectUser(this.node, this.nick, { identity: this.identity });
    c.close();
  }

  start(): void {
    this.#loop = this.#run();
  }

  async finish(): Promise<void> {
    this.stopped = true;
    this.client?.close();
    await this.#loop;
  }

  async #run(): Promise<void> {
    while (!this.stopped) {
      let client: PmbClient;
      try {
        client = await connectUser(this.node, this.nick, { identity: this.identity, register: false });
      } catch {
        await sleep(100); // the server is down or still starting
        continue;
      }
      this.client = client;
      this.#watch(client);
      const closed = new Promise<void>((resolve) => {
        const prev = client.events.close;
        client.events.close = (code, reason) => {
          prev?.(code, reason);
          resolve();
        };
      });
      if (client.conn.closed) continue;
      await this.#pump(client);
      if (!client.conn.closed && !this.stopped) await Promise.race([closed, this.#whileNotStopped()]);
      client.close();
    }
  }

  async #whileNotStopped(): Promise<void> {
    while (!this.stopped) await sleep(50);
  }

  /** Deliveries as the server pushed them, acks as it answered them, messages as the user saw them. */
  #watch(client: PmbClient): void {
    const seqs = new Set<number>();
    const conn = client.conn;
    const handle = conn.events.deliver;
    conn.events.deliver = (f) => {
      if (seqs.has(f.seq)) this.problems.pushedTwice.push(`${this.nick} seq ${f.seq}`);
      else if (f.seq <= this.ackConfirmed) this.pushedAfterAck++;
      else if (this.shownSeqs.has(f.seq)) this.redelivered++;
      seqs.add(f.seq);
      handle?.(f);
    };
    const request = conn.request.bind(conn);
    conn.request = ((method, params) => {
      const p = request(method, params);
      if (method === Ack) {
        const seq = (params as unknown as { seq: number }).seq;
        p.then(
          () => {
            this.ackConfirmed = Math.max(this.ackConfirmed, seq);
          },
          () => {},
        );
      }
      return p;
    }) as typeof conn.request;
    // The user is one person across connections: like a real client it remembers what it has shown, so a
    // message pushed again is not shown again (docs/protocol.md, 10). Shown under two positions = stored twice.
    client.events.message = (m) => {
      const prev = this.shown.get(m.id);
      if (prev) {
        if (prev.seq !== m.seq)
          this.problems.duplicated.push(`${this.nick} shown ${m.id} at seq ${prev.seq} and ${m.seq}`);
        return;
      }
      this.shown.set(m.id, { seq: m.seq, text: m.text, from: m.from });
      this.shownSeqs.add(m.seq);
      this.shownOrder.push(m.id);
    };
  }

  /** Seal the next message, in order (one at a time, so send order is index order). */
  #seal(client: PmbClient): Promise<Envelope> {
    const next = this.#sealing.then(async () => {
      const index = this.#next++;
      const text = `${this.nick}#${index}`;
      const env = await client.seal(
        this.peers.map((p) => p.key),
        text,
      );
      this.outstanding.push(env);
      this.sent.push({ id: env.id, index, text, to: this.peers.map((p) => p.nick) });
      return env;
    });
    this.#sealing = next.catch(() => {});
    return next;
  }

  /** Resend what is outstanding, then send new messages (while generating), `window` in flight. */
  async #pump(client: PmbClient): Promise<void> {
    const resend = [...this.outstanding];
    let dead = false;
    const worker = async () => {
      while (!dead && !this.stopped && !client.conn.closed) {
        let env = resend.shift();
        if (!env) {
          if (!this.generating) return;
          env = await this.#seal(client);
          if (client.conn.closed) return; // sealed after the connection died: resent on the next one
        }
        try {
          await client.sendEnvelope(env);
          this.ackedIds.add(env.id);
          const i = this.outstanding.indexOf(env);
          if (i >= 0) this.outstanding.splice(i, 1);
        } catch {
          dead = true;
        }
      }
    };
    await Promise.all(Array.from({ length: this.window }, worker));
  }
}

export async function runKillScenario(opts: KillScenarioOptions): Promise<KillScenarioResult> {
  const seed = opts.seed ?? Math.floor(Math.random() * 2 ** 31);
  const random = prng(seed);
  const log = opts.log ?? (() => {});
  const [loadMin, loadMax] = opts.loadMs ?? [150, 600];
  const began = Date.now();
  const net: ProcessNetwork = await startNetwork(opts.servers, { mode: 'process' });
  const restartMs: number[] = [];
  let cycles = 0;
  const users: ChaosUser[] = [];
  try {
    const nodes = net.nodes;
    const n0 = nodes[0] as ProcessNode;
    if (opts.servers === 1) {
      for (const nick of ['alice', 'bob', 'carol']) users.push(new ChaosUser(nick, n0));
    } else {
      users.push(new ChaosUser('alice', n0), new ChaosUser('bob', nodes[1] as ProcessNode));
    }
    for (const u of users) {
      u.window = opts.window ?? 8;
      await u.register();
    }
    // Each user writes to every other one (one envelope, all of them as recipients).
    for (const u of users) {
      const c = await connectUser(u.node, u.nick, { identity: u.identity, register: false });
      for (const v of users) {
        if (v !== u) u.peers.push({ nick: v.nick, key: (await c.lookup(v.address)).key });
      }
      c.close();
    }
    for (const u of users) u.start();
    const acked = () => users.reduce((sum, u) => sum + u.ackedIds.size, 0);
    const deadline = began + (opts.timeCapMs ?? Number.POSITIVE_INFINITY);
    while (cycles < opts.cycles && Date.now() < deadline) {
      // Kill under load: after some acks since the last restart, at a random moment.
      const base = acked();
      await until(() => acked() >= base + 10, 60_000, 'messages to flow again after a restart');
      await sleep(loadMin + random() * (loadMax - loadMin));
      const victim = opts.servers === 1 ? 0 : cycles % 2;
      await net.kill(victim);
      const t0 = Date.now();
      await net.restart(victim);
      restartMs.push(Date.now() - t0);
      cycles++;
      log(`cycle ${cycles}: killed s${victim + 1} with ${acked()} acked; back in ${restartMs.at(-1)} ms`);
    }
    // Drain: no new messages; everything outstanding is resent until acknowledged and delivered.
    for (const u of users) u.generating = false;
    const delivered = () =>
      users.every((u) =>
        u.sent.every((s) =>
          s.to.every((nick) => users.find((v) => v.nick === nick)?.shown.has(s.id) ?? false),
        ),
      );
    const settled = () => users.every((u) => u.outstanding.length === 0) && delivered();
    try {
      await until(settled, opts.drainMs ?? 60_000, 'every message to be acknowledged and delivered');
    } catch {
      // Counted as lost below.
    }
    // Let a late duplicate show itself, with acks flushed.
    for (const u of users) await u.client?.flushAcks().catch(() => {});
    await sleep(500);
    for (const u of users) await u.finish();

    const byNick = new Map(users.map((u) => [u.nick, u]));
    const result: KillScenarioResult = {
      seed,
      cycles,
      sent: 0,
      acked: 0,
      expected: 0,
      received: 0,
      lost: [],
      duplicated: users.flatMap((u) => u.problems.duplicated),
      pushedTwice: users.flatMap((u) => u.problems.pushedTwice),
      wrong: [],
      redelivered: users.reduce((sum, u) => sum + u.redelivered, 0),
      pushedAfterAck: users.reduce((sum, u) => sum + u.pushedAfterAck, 0),
      restartMs,
      elapsedMs: Date.now() - began,
    };
    for (const u of users) {
      result.sent += u.sent.length;
      result.acked += u.ackedIds.size;
      const index = new Map(u.sent.map((s) => [s.id, s]));
      for (const s of u.sent) {
        if (!u.ackedIds.has(s.id)) continue;
        for (const nick of s.to) {
          result.expected++;
          const got = byNick.get(nick)?.shown.get(s.id);
          if (!got) result.lost.push(`${s.id} (${s.text}) -> ${nick}`);
          else {
            result.received++;
            if (got.text !== s.text) result.wrong.push(`${nick} read ${got.text} for ${s.text}`);
          }
        }
      }
      // In order per sender, at every recipient.
      for (const v of users) {
        if (v === u) continue;
        let last = -1;
        for (const id of v.shownOrder) {
          const s = index.get(id);
          if (!s) continue;
          if (s.index <= last) result.wrong.push(`${v.nick} got ${s.text} after ${u.nick}#${last}`);
          last = Math.max(last, s.index);
        }
      }
    }
    return result;
  } finally {
    for (const u of users) await u.finish().catch(() => {});
    await net.close();
  }
}

export function median(xs: number[]): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

export function summary(r: KillScenarioResult): string {
  return (
    `cycles ${r.cycles}, sent ${r.sent}, acked ${r.acked}, deliveries ${r.received}/${r.expected}, ` +
    `lost ${r.lost.length}, duplicated ${r.duplicated.length + r.pushedTwice.length}, wrong ${r.wrong.length}, ` +
    `pushed again: ${r.redelivered} unacked, ${r.pushedAfterAck} after an answered ack, restart median ${median(r.restartMs)} ms max ${Math.max(0, ...r.restartMs)} ms, ` +
    `${Math.round(r.elapsedMs / 1000)} s, seed ${r.seed}`
  );
}
