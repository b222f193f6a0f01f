/**
 * `npm run bench:romeo [-- --text FILE] [--servers 1|2] [--runs N] [--max-seconds N] [--inline-only] [--cpu-prof]`
 *
 * PMB's form of the public "Romeo and Juliet" benchmark (timokoesters/romeo-and-juliet-benchmark, the
 * Matrix community's): every character of the play is a user, every spoken line one end-to-end
 * encrypted message from its character to the character who speaks next, sent in play order, each send
 * waiting for its durable ack. The wall time of that strictly sequential part is the figure, as in the
 * public table. Servers are child processes; every client (senders and online recipients, which verify
 * and decrypt what they receive) lives in this process. `--servers 2` puts the two houses on two linked
 * servers (federation) and plays the one-server form beside it in the same invocation, as the baseline.
 * Figures only: nothing passes or fails.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { type Contact, PmbClient, type WebSocketFactory } from '../../src/client/index.js';
import { generateIdentity, type Identity } from '../../src/crypto/index.js';
import type { DeliverFrame } from '../../src/protocol/frames.js';
import { lookupWhenKnown } from '../federation/load.js';
import { type Child as ChildOf, freePort, startChild, toJson } from '../lib/child.js';
import { printTable } from '../lib/table.js';
import { fsyncMs, latency, machine, median, readProc } from '../relay/stats.js';
import { crossServer, type Placement, place } from './houses.js';
import { type Message, type Play, parsePlay } from './play.js';

const here = dirname(fileURLToPath(import.meta.url));
// dist/bench/romeo -> the repo root, and bench/results in the source tree.
const repoRoot = join(here, '..', '..', '..');
const resultsDir = join(repoRoot, 'bench', 'results');
const dataRoot = process.env.PMB_BENCH_DIR ?? tmpdir();

const { values: flags } = parseArgs({
  options: {
    text: { type: 'string' },
    servers: { type: 'string', default: '1' },
    runs: { type: 'string', default: '3' },
    'max-seconds': { type: 'string', default: '300' },
    'inline-only': { type: 'boolean', default: false },
    'cpu-prof': { type: 'boolean', default: false },
  },
});
const textFile = resolve(repoRoot, flags.text ?? join('..', 'shared', 'data', 'romeo_and_juliet.txt'));
const servers = Number(flags.servers);
const runs = Math.max(1, Math.min(20, Number(flags.runs)));
/** Bound on the timed part of one run: no new send starts after this. */
const maxSendMs = Number(flags['max-seconds']) * 1000;
/** After the last ack, wait at most this long for the recipients to have decrypted everything. */
const DRAIN_MS = 30_000;

/** Published figures of the public benchmark (its README, 2021-07): other machines, not measured here. */
const PUBLISHED =
  'Conduit 0 m 28 s to 2 m 13 s, Dendrite 0 m 51 s to 8 m 24 s, depending on the machine (one room, one server)';

const NodeWebSocket = WebSocket as unknown as WebSocketFactory;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** "0 m 41 s", as the public table writes times (whole seconds). */
export function minSec(ms: number): string {
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)} m ${s % 60} s`;
}

type Child = ChildOf<{ url: string }> & { url: string; domain: string };

/** One server child (bench/romeo/server.ts): prints one JSON line when listening, exits when stdin ends. */
async function startServer(domain: string, args: string[] = []): Promise<Child> {
  const child = await startChild<{ url: string }>(join(here, 'server.js'), {
    args: [domain, ...args],
    nodeArgs: profDir ? ['--cpu-prof', `--cpu-prof-dir=${join(profDir, domain)}`] : [],
    env: { PMB_BENCH_DIR: dataRoot },
  });
  return Object.assign(child, { url: child.info.url, domain });
}

/** `--cpu-prof`: each server child writes a .cpuprofile under <dir>/<domain>/. */
const profDir = flags['cpu-prof'] ? join(tmpdir(), `pmb-bench-romeo-prof-${process.pid}`) : undefined;

/** Wait at most this long for two federated servers to have their link open. */
const LINK_WAIT_MS = 30_000;

/**
 * The servers of a placement. One: a plain server on port 0. Two: each on a port chosen here, naming the
 * other as its peer and in its resolve map (`pmb serve --peer D --resolve D=127.0.0.1:PORT`); returns
 * once both have the link open.
 */
async function startHosts(domains: string[]): Promise<Child[]> {
  if (domains.length === 1) return [await startServer(domains[0]!)];
  const ports: number[] = [];
  for (const _ of domains) ports.push(await freePort());
  const settled = await Promise.allSettled(
    domains.map((d, i) => {
      const others = domains.flatMap((o, j) =>
        j === i ? [] : [['--peer', o, '--resolve', `${o}=127.0.0.1:${ports[j]}`]],
      );
      return startServer(d, ['--port', String(ports[i]), ...others.flat()]);
    }),
  );
  const hosts = settled.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  try {
    const failed = settled.find((r) => r.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
    const until = performance.now() + LINK_WAIT_MS;
    for (;;) {
      const states = await Promise.all(hosts.map((h) => h.ask<{ links: string[] }>('links')));
      if (states.every((s) => s.links.length === domains.length - 1)) return hosts;
      if (performance.now() > until) throw new Error(`the servers did not link in ${LINK_WAIT_MS / 1000} s`);
      await sleep(20);
    }
  } catch (err) {
    await Promise.all(hosts.map((h) => h.stop()));
    throw err;
  }
}

/** A character's account: its client, and what it received (decrypted, verified, in arrival order). */
interface Actor {
  key: string;
  nick: string;
  address: string;
  client: PmbClient;
  /** Contacts looked up during setup, by character key. */
  contacts: Map<string, Contact>;
  received: { from: string; text: string }[];
  /** Copies of its own messages pushed back to it (outgoing): not counted as received. */
  ownCopies: number;
  rejected: number;
}

/** A nickname from a character's name: `FRIAR LAURENCE` -> `friar-laurence`. */
function nickOf(key: string): string {
  return key.replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');
}

interface Setup {
  actors: Map<string, Actor>;
  /** Key generation (one OpenPGP identity per character), ms. */
  keysMs: number;
  /** Connect + register + login, ms. */
  accountsMs: number;
  /** Every sender looks up its recipients and every recipient its senders (bindings verified), ms. */
  lookupsMs: number;
  totalMs: number;
}

async function setUp(play: Play, placement: Placement, hosts: Child[]): Promise<Setup> {
  const t0 = performance.now();
  const keys = [...play.characters.keys()];
  const identities: Identity[] = [];
  for (const k of keys) identities.push((await generateIdentity({ userId: k })).identity);
  const t1 = performance.now();
  const actors = new Map<string, Actor>();
  // A few at a time: pendingLoginsPerAddress (16) is the shipped default.
  for (let i = 0; i < keys.length; i += 8) {
    await Promise.all(
      keys.slice(i, i + 8).map(async (key, j) => {
        const host = hosts[placement.home.get(key) ?? 0] as Child;
        const client = await PmbClient.connect({
          url: host.url,
          WebSocket: NodeWebSocket,
          identity: identities[i + j]!,
          device: 'stage',
        });
        const nick = nickOf(key);
        await client.register(nick);
        await client.login();
        await client.waitSynced();
        actors.set(key, {
          key,
          nick,
          address: `${nick}@${host.domain}`,
          client,
          contacts: new Map(),
          received: [],
          ownCopies: 0,
          rejected: 0,
        });
      }),
    );
  }
  const t2 = performance.now();
  // Warm every contact cache, both ways, so the timed part does no lookups.
  const pairs = new Set<string>();
  for (const m of play.messages) pairs.add(`${m.from}\n${m.to}`);
  for (const p of pairs) {
    const [from, to] = p.split('\n') as [string, string];
    const a = actors.get(from)!;
    const b = actors.get(to)!;
    // Across servers, a name is known once gossip has brought its binding over: retried until then.
    a.contacts.set(to, await lookupWhenKnown(a.client, b.address));
    b.contacts.set(from, await lookupWhenKnown(b.client, a.address));
  }
  const t3 = performance.now();
  return { actors, keysMs: t1 - t0, accountsMs: t2 - t1, lookupsMs: t3 - t2, totalMs: t3 - t0 };
}

interface RunResult {
  complete: boolean;
  sent: number;
  /** First send -> last ack: the figure of the public table. */
  wallMs: number;
  /** First send -> last line decrypted by its recipient. */
  wallToLastDecryptMs: number;
  msgsPerS: number;
  /** client.seal + sendEnvelope until send.ok (durable), per line. */
  sendToAckMs: ReturnType<typeof latency>;
  /** Sealing alone (sign + encrypt, client CPU), per line. */
  sealMs: ReturnType<typeof latency>;
  /** sendEnvelope until send.ok alone: the wire and the server, per line. */
  wireToAckMs: ReturnType<typeof latency>;
  /** Send start -> recipient's events.message (decrypted and verified), per line. */
  sendToDecryptedMs: ReturnType<typeof latency>;
  /** Send start -> the recipient's raw deliver frame, for lines within one server and across servers. */
  sendToFrameLocalMs: ReturnType<typeof latency>;
  sendToFrameCrossMs: ReturnType<typeof latency>;
  /** Lines sent across servers. */
  crossing: number;
  /** Recipient side: raw deliver frame -> events.message (queue + verify + decrypt), per line. */
  openMs: ReturnType<typeof latency>;
  openTotalS: number;
  serverCpuS: number;
  loadGenCpuS: number;
  commits: number;
  fsyncMs: number;
  verify: Verification;
}

interface Verification {
  recipients: number;
  expected: number;
  received: number;
  /** Lines received at the right place in the right order. */
  inOrder: number;
  /** Positions whose line differs from the one sent there (wrong sender, text or order). */
  mismatches: number;
  /**
   * The same, per conversation (the lines of one sender to one recipient, in the order sent): what PMB
   * promises across servers. A recipient's lines from a sender on another server travel through the outbox
   * after send.ok, so they may interleave differently with lines from its own server; content and
   * per-conversation order must still hold.
   */
  conversationMismatches: number;
  missing: number;
  extra: number;
  rejected: number;
  ownCopies: number;
}

/** Each recipient must have received exactly its lines, in the order they were sent. */
function verify(play: Play, actors: Map<string, Actor>, sent: Message[]): Verification {
  const v: Verification = {
    recipients: 0,
    expected: sent.length,
    received: 0,
    inOrder: 0,
    mismatches: 0,
    conversationMismatches: 0,
    missing: 0,
    extra: 0,
    rejected: 0,
    ownCopies: 0,
  };
  const byFingerprint = new Map([...actors.values()].map((a) => [a.client.identity.fingerprint, a.key]));
  for (const actor of actors.values()) {
    const expected = sent.filter((m) => m.to === actor.key);
    if (expected.length) v.recipients++;
    const got = actor.received;
    v.received += got.length;
    v.rejected += actor.rejected;
    v.ownCopies += actor.ownCopies;
    for (let i = 0; i < Math.min(expected.length, got.length); i++) {
      const e = expected[i] as Message;
      const g = got[i] as { from: string; text: string };
      if ((byFingerprint.get(g.from) ?? g.from) === e.from && g.text === e.text) v.inOrder++;
      else v.mismatches++;
    }
    const senders = new Set(expected.map((m) => m.from));
    for (const from of senders) {
      const e = expected.filter((m) => m.from === from);
      const g = got.filter((x) => (byFingerprint.get(x.from) ?? x.from) === from);
      for (let i = 0; i < Math.min(e.length, g.length); i++) {
        if (g[i]!.text !== e[i]!.text) v.conversationMismatches++;
      }
    }
    v.missing += Math.max(0, expected.length - got.length);
    v.extra += Math.max(0, got.length - expected.length);
  }
  void play;
  return v;
}

/**
 * inline: recipients are online and verify + decrypt each line as it arrives, on this process's thread,
 * while the senders go on (the figure). deferred: recipients hold their deliveries until the last send
 * has its ack, then decrypt them all: the same play without the recipients' CPU inside the timed part.
 */
type Mode = 'inline' | 'deferred';

/** The timed part: the play, line by line, each send awaiting its durable ack before the next. */
async function perform(
  play: Play,
  placement: Placement,
  setup: Setup,
  hosts: Child[],
  mode: Mode,
): Promise<RunResult> {
  const { actors } = setup;
  /** Lines whose sender and recipient live on different servers (none with one server). */
  const crossing = new Set<string>();
  const frameCross: number[] = [];
  const frameLocal: number[] = [];
  // Deferred: deliveries are held (not verified, decrypted or acked) until the last send has its ack.
  let holding = mode === 'deferred';
  const held: { actor: Actor; frame: DeliverFrame }[] = [];
  const handlers = new Map<Actor, (f: DeliverFrame) => void>();
  const sentAt = new Map<string, number>();
  const decrypted: number[] = [];
  const opened: number[] = [];
  let lastDecrypt = 0;
  let openTotal = 0;
  let pending = 0;
  for (const actor of actors.values()) {
    const arrived = new Map<string, number>();
    const conn = actor.client.conn;
    const handle = conn.events.deliver;
    // Raw frame arrival, before the client queues, verifies and decrypts it.
    const open = (f: DeliverFrame) => {
      arrived.set(f.envelope.id, performance.now());
      handle?.(f);
    };
    handlers.set(actor, open);
    conn.events.deliver = (f) => {
      // Send -> the raw deliver frame, before any queueing or holding: split by whether the line crossed.
      const t = sentAt.get(f.envelope.id);
      if (t !== undefined && f.envelope.from !== actor.client.identity.fingerprint) {
        (crossing.has(f.envelope.id) ? frameCross : frameLocal).push(performance.now() - t);
      }
      if (holding) held.push({ actor, frame: f });
      else open(f);
    };
    actor.client.events.message = (m) => {
      const now = performance.now();
      const a = arrived.get(m.id);
      arrived.delete(m.id);
      if (m.outgoing) {
        actor.ownCopies++;
        return;
      }
      actor.received.push({ from: m.from, text: m.text ?? '' });
      if (a !== undefined) {
        opened.push(now - a);
        openTotal += now - a;
      }
      const t = sentAt.get(m.id);
      if (t !== undefined) {
        sentAt.delete(m.id);
        decrypted.push(now - t);
        pending--;
      }
      lastDecrypt = now;
    };
    actor.client.events.rejected = () => {
      actor.rejected++;
    };
  }

  const fsync = fsyncMs(dataRoot, 20);
  const commits0 = await Promise.all(hosts.map((h) => h.commits()));
  const cpu0 = hosts.map((h) => readProc(h.pid).cpuS);
  const load0 = process.cpuUsage();
  const seal: number[] = [];
  const wire: number[] = [];
  const total: number[] = [];
  const sent: Message[] = [];
  const t0 = performance.now();
  let lastAck = t0;
  for (const m of play.messages) {
    if (performance.now() - t0 > maxSendMs) break;
    const from = actors.get(m.from)!;
    const to = from.contacts.get(m.to)!;
    const s0 = performance.now();
    const envelope = await from.client.seal([to.key], m.text);
    const s1 = performance.now();
    sentAt.set(envelope.id, s0);
    if (placement.home.get(m.from) !== placement.home.get(m.to)) crossing.add(envelope.id);
    pending++;
    sent.push(m);
    await from.client.sendEnvelope(envelope);
    const s2 = performance.now();
    seal.push(s1 - s0);
    wire.push(s2 - s1);
    total.push(s2 - s0);
    lastAck = s2;
  }
  if (holding) {
    // The held lines are handed to the clients now, in arrival order; the server pushes the rest of
    // each mailbox as the acks free its delivery window.
    holding = false;
    for (const { actor, frame } of held.splice(0)) handlers.get(actor)?.(frame);
  }
  // Bounded wait for the recipients to have decrypted the last lines.
  const drainUntil = performance.now() + DRAIN_MS;
  while (pending > 0 && performance.now() < drainUntil) await sleep(5);
  const load = process.cpuUsage(load0);
  const cpu1 = hosts.map((h) => readProc(h.pid).cpuS);
  const commits1 = await Promise.all(hosts.map((h) => h.commits()));
  // Acks of the last deliveries are not part of the figure, but let them land before the next run.
  await Promise.all([...actors.values()].map((a) => a.client.flushAcks()));

  const wallMs = lastAck - t0;
  return {
    complete: sent.length === play.messages.length && pending === 0,
    sent: sent.length,
    wallMs,
    wallToLastDecryptMs: Math.max(lastAck, lastDecrypt) - t0,
    msgsPerS: (sent.length / wallMs) * 1000,
    sendToAckMs: latency(total),
    sealMs: latency(seal),
    wireToAckMs: latency(wire),
    sendToDecryptedMs: latency(decrypted),
    sendToFrameLocalMs: latency(frameLocal),
    sendToFrameCrossMs: latency(frameCross),
    crossing: crossing.size,
    openMs: latency(opened),
    openTotalS: openTotal / 1000,
    serverCpuS: cpu1.reduce((a, c, i) => a + c - (cpu0[i] as number), 0),
    loadGenCpuS: (load.user + load.system) / 1e6,
    commits: commits1.reduce((a, c, i) => a + c - (commits0[i] as number), 0),
    fsyncMs: fsync,
    verify: verify(play, actors, sent),
  };
}

function printPlacement(play: Play, placement: Placement): void {
  for (const [d, domain] of placement.domains.entries()) {
    const who = [...play.characters.keys()].filter((c) => placement.home.get(c) === d);
    console.log(`  ${domain}: ${who.map((c) => play.characters.get(c)).join(', ')}`);
  }
  for (const [c, why] of placement.reason) {
    if (!why.startsWith('house') && placement.domains.length > 1) {
      console.log(
        `    ${play.characters.get(c)} -> ${placement.domains[placement.home.get(c) ?? 0]}: ${why}`,
      );
    }
  }
  const cross = crossServer(play, placement);
  if (placement.domains.length > 1) {
    console.log(`  ${cross} of ${play.messages.length} lines would cross between the servers`);
  }
}

type Sample = RunResult & { mode: Mode; setup: Omit<Setup, 'actors'> };

function summarize(list: Sample[]) {
  const m = (f: (s: Sample) => number) => median(list.map(f));
  const walls = list.map((s) => s.wallMs);
  return {
    runs: list.length,
    wallMs: m((s) => s.wallMs),
    wallRangeMs: [Math.min(...walls), Math.max(...walls)],
    wallToLastDecryptMs: m((s) => s.wallToLastDecryptMs),
    msgsPerS: m((s) => s.msgsPerS),
    sendToAckP50Ms: m((s) => s.sendToAckMs.p50),
    sendToAckP99Ms: m((s) => s.sendToAckMs.p99),
    sealP50Ms: m((s) => s.sealMs.p50),
    sealP99Ms: m((s) => s.sealMs.p99),
    wireToAckP50Ms: m((s) => s.wireToAckMs.p50),
    wireToAckP99Ms: m((s) => s.wireToAckMs.p99),
    sendToDecryptedP50Ms: m((s) => s.sendToDecryptedMs.p50),
    sendToDecryptedP99Ms: m((s) => s.sendToDecryptedMs.p99),
    crossing: m((s) => s.crossing),
    sendToFrameLocalP50Ms: m((s) => s.sendToFrameLocalMs.p50),
    sendToFrameLocalP99Ms: m((s) => s.sendToFrameLocalMs.p99),
    sendToFrameCrossP50Ms: m((s) => s.sendToFrameCrossMs.p50),
    sendToFrameCrossP99Ms: m((s) => s.sendToFrameCrossMs.p99),
    openP50Ms: m((s) => s.openMs.p50),
    openTotalS: m((s) => s.openTotalS),
    serverCpuS: m((s) => s.serverCpuS),
    loadGenCpuS: m((s) => s.loadGenCpuS),
    msgsPerCommit: m((s) => (s.commits ? s.sent / s.commits : 0)),
    fsyncMs: m((s) => s.fsyncMs),
    setupMs: m((s) => s.setup.totalMs),
    setupKeysMs: m((s) => s.setup.keysMs),
    setupAccountsMs: m((s) => s.setup.accountsMs),
    setupLookupsMs: m((s) => s.setup.lookupsMs),
    incompleteRuns: list.filter((s) => !s.complete).length,
    verify: {
      inOrder: list.reduce((a, s) => a + s.verify.inOrder, 0),
      expected: list.reduce((a, s) => a + s.verify.expected, 0),
      mismatches: list.reduce((a, s) => a + s.verify.mismatches, 0),
      conversationMismatches: list.reduce((a, s) => a + s.verify.conversationMismatches, 0),
      missing: list.reduce((a, s) => a + s.verify.missing, 0),
      extra: list.reduce((a, s) => a + s.verify.extra, 0),
      rejected: list.reduce((a, s) => a + s.verify.rejected, 0),
      recipients: list[0]?.verify.recipients ?? 0,
    },
  };
}
type Summary = ReturnType<typeof summarize>;

const sec = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const ms2 = (a: number, b: number) => `${a.toFixed(2)} / ${b.toFixed(2)} ms`;

/** The figures of one configuration (one server, or the two houses' servers), as the one-server form prints. */
function report(play: Play, n: number, summary: Summary, deferred: Summary | undefined): void {
  const v = summary.verify;
  console.log(
    `\nmedian of ${summary.runs} run(s), ${n} server${n > 1 ? 's' : ''}, strictly sequential (one send in flight), ` +
      'recipients online and decrypting (inline)',
  );
  console.log(`  users (characters)        ${play.characters.size}`);
  console.log(`  messages (spoken lines)   ${play.messages.length}`);
  console.log(
    `  setup, not timed          ${sec(summary.setupMs)}: keys ${sec(summary.setupKeysMs)}, ` +
      `connect+register+login ${sec(summary.setupAccountsMs)}, lookups ${sec(summary.setupLookupsMs)}`,
  );
  console.log(
    `  play, wall time           ${minSec(summary.wallMs)}  (${sec(summary.wallMs)}; runs ` +
      `${summary.wallRangeMs.map((x) => (x / 1000).toFixed(2)).join('-')} s; to the last decryption ` +
      `${sec(summary.wallToLastDecryptMs)})`,
  );
  console.log(`  msgs/s                    ${summary.msgsPerS.toFixed(0)}`);
  console.log(
    `  send->ack p50 / p99       ${ms2(summary.sendToAckP50Ms, summary.sendToAckP99Ms)}: seal (sign+encrypt) ` +
      `${ms2(summary.sealP50Ms, summary.sealP99Ms)}, then wire+server to the durable ack ` +
      `${ms2(summary.wireToAckP50Ms, summary.wireToAckP99Ms)}`,
  );
  console.log(
    `  send->decrypted p50 / p99 ${ms2(summary.sendToDecryptedP50Ms, summary.sendToDecryptedP99Ms)} at the ` +
      `recipient; frame->decrypted p50 ${summary.openP50Ms.toFixed(2)} ms, ${summary.openTotalS.toFixed(1)} s in all`,
  );
  if (n > 1) {
    console.log(
      `  send->deliver frame       within one server ${ms2(summary.sendToFrameLocalP50Ms, summary.sendToFrameLocalP99Ms)}, ` +
        `across servers (${summary.crossing} lines) ${ms2(summary.sendToFrameCrossP50Ms, summary.sendToFrameCrossP99Ms)}`,
    );
  }
  console.log(
    `  CPU                       server${n > 1 ? 's' : ''} ${summary.serverCpuS.toFixed(2)} s, load generator ` +
      `${summary.loadGenCpuS.toFixed(2)} s (every client, one thread); ${summary.msgsPerCommit.toFixed(2)} ` +
      `msgs/commit, fsync ${summary.fsyncMs.toFixed(2)} ms`,
  );
  console.log(
    `  verified                  ${v.recipients} recipients; ${v.inOrder}/${v.expected} lines received and ` +
      `decrypted in order over ${summary.runs} run(s); mismatches ${v.mismatches} (per conversation ` +
      `${v.conversationMismatches}), missing ${v.missing}, extra ${v.extra}, rejected ${v.rejected}`,
  );
  if (deferred) {
    const d = deferred.verify;
    console.log(
      `\nsame play, recipients' decryption deferred until after the last ack (median of ${deferred.runs}):`,
    );
    console.log(
      `  play ${minSec(deferred.wallMs)} (${sec(deferred.wallMs)}; inline/deferred ` +
        `${(summary.wallMs / deferred.wallMs).toFixed(2)}), ${deferred.msgsPerS.toFixed(0)} msgs/s, ` +
        `send->ack ${ms2(deferred.sendToAckP50Ms, deferred.sendToAckP99Ms)} (seal ` +
        `${ms2(deferred.sealP50Ms, deferred.sealP99Ms)}, wire+server ` +
        `${ms2(deferred.wireToAckP50Ms, deferred.wireToAckP99Ms)}); load generator ` +
        `${deferred.loadGenCpuS.toFixed(2)} s CPU; all decrypted ${sec(deferred.wallToLastDecryptMs)} after the ` +
        `first send; verified ${d.inOrder}/${d.expected}, mismatches ${d.mismatches + d.missing + d.extra}` +
        ` (per conversation ${d.conversationMismatches + d.missing + d.extra})`,
    );
  }
}

async function main(): Promise<void> {
  const host = machine();
  const args = process.argv.slice(2);
  const command = `npm run bench:romeo${args.length ? ` -- ${args.join(' ')}` : ''}`;
  const date = new Date().toISOString();
  const text = readFileSync(textFile, 'utf8');
  const play = parsePlay(text);
  const placement = place(play, servers);
  console.log(`PMB "Romeo and Juliet" benchmark  ${date}`);
  console.log(`machine: ${host.nproc} cpus, ${host.cpu}, node ${host.node}, linux ${host.kernel}`);
  console.log(`command: ${command}`);
  console.log(`text: ${relative(process.cwd(), textFile) || textFile}`);
  console.log(
    `play: ${play.characters.size} characters (users), ${play.speeches.length} speeches, ` +
      `${play.messages.length} spoken lines (messages); ${play.stageDirectionLines} stage-direction lines ` +
      `and ${play.headings} act/scene/prologue headings not sent`,
  );
  console.log(
    `  (the public benchmark's own count on this file: ${play.publicBenchmark.requests} /send requests, ` +
      `stage directions and act headings included, by ${play.publicBenchmark.users} users)`,
  );
  console.log(`servers: ${servers}`);
  printPlacement(play, placement);
  // With two servers, the one-server form runs too, in the same invocation, as the baseline.
  const placements = servers === 1 ? [placement] : [place(play, 1), placement];
  if (servers !== 1) {
    console.log(
      '  the two servers are separate processes, each naming the other as peer and in its resolve map; ' +
        'the one-server form runs beside them as the baseline',
    );
  }
  const loadAvg = { start: loadavg()[0] ?? 0, end: 0 };
  console.log(`load average (1 min) at start: ${loadAvg.start.toFixed(2)}`);
  console.log(`disk: median 4 KiB write+fsync in ${dataRoot} = ${fsyncMs(dataRoot).toFixed(2)} ms`);
  console.log(
    `runs: ${runs}${servers > 1 ? ' of each form' : ''}, each on fresh server(s) with fresh accounts; each run sends for at most ` +
      `${maxSendMs / 1000} s, then waits at most ${DRAIN_MS / 1000} s for the last decryptions\n`,
  );

  const samples = placements.map(() => ({ inline: [] as Sample[], deferred: [] as Sample[] }));
  const modes: Mode[] = flags['inline-only'] ? ['inline'] : ['inline', 'deferred'];
  for (let r = 0; r < runs; r++) {
    // Alternate which form and which mode go first, so drift on a shared machine falls on all of them.
    const order = placements.map((_, k) => k);
    for (const k of r % 2 ? order.reverse() : order) {
      const where = placements[k]!;
      for (const mode of r % 2 ? [...modes].reverse() : modes) {
        const hosts = await startHosts(where.domains);
        let actors: Map<string, Actor> | undefined;
        try {
          const setup = await setUp(play, where, hosts);
          actors = setup.actors;
          const result = await perform(play, where, setup, hosts, mode);
          const { actors: _a, ...setupTimes } = setup;
          samples[k]![mode].push({ ...result, mode, setup: setupTimes });
          const v = result.verify;
          console.log(
            `  run ${r + 1}${placements.length > 1 ? ` ${where.domains.length} server${where.domains.length > 1 ? 's' : ' '}` : ''} ` +
              `${mode.padEnd(8)}: setup ${(setup.totalMs / 1000).toFixed(1)} s; play ` +
              `${minSec(result.wallMs)} (${(result.wallMs / 1000).toFixed(2)} s), ${result.sent} msgs, ` +
              `${Math.round(result.msgsPerS)} msgs/s, send->ack p50 ${result.sendToAckMs.p50.toFixed(2)} ms ` +
              `p99 ${result.sendToAckMs.p99.toFixed(2)} ms; verified ${v.inOrder}/${v.expected} in order, ` +
              `${v.mismatches} mismatches${where.domains.length > 1 ? ` (${v.conversationMismatches} per conversation)` : ''}, ${v.missing} missing` +
              (result.complete ? '' : '  ! INCOMPLETE (time bound or drain)'),
          );
        } finally {
          for (const a of actors?.values() ?? []) a.client.close();
          await Promise.all(hosts.map((h) => h.stop()));
        }
      }
    }
  }

  const forms = placements.map((where, k) => ({
    servers: where.domains,
    summary: summarize(samples[k]!.inline),
    deferred: samples[k]!.deferred.length ? summarize(samples[k]!.deferred) : undefined,
    runs: [...samples[k]!.inline, ...samples[k]!.deferred],
  }));
  for (const f of forms) report(play, f.servers.length, f.summary, f.deferred);
  if (forms.length > 1) {
    const [one, two] = forms as [(typeof forms)[0], (typeof forms)[0]];
    const row = (label: string, a: number, b: number, fmt: (x: number) => string) => [
      label,
      fmt(a),
      fmt(b),
      (b / a).toFixed(2),
    ];
    const t = (ms: number) => `${minSec(ms)} (${sec(ms)})`;
    const rows: string[][] = [
      ['median', 'one server', `two servers (${two.summary.crossing} lines cross)`, 'two/one'],
      row('play wall time, inline', one.summary.wallMs, two.summary.wallMs, t),
    ];
    if (one.deferred && two.deferred)
      rows.push(row('play wall time, deferred', one.deferred.wallMs, two.deferred.wallMs, t));
    rows.push(
      row('send->ack p50 ms, inline', one.summary.sendToAckP50Ms, two.summary.sendToAckP50Ms, (x) =>
        x.toFixed(2),
      ),
      row(
        'send->decrypted p50 ms, inline',
        one.summary.sendToDecryptedP50Ms,
        two.summary.sendToDecryptedP50Ms,
        (x) => x.toFixed(2),
      ),
      row('server CPU s (sum), inline', one.summary.serverCpuS, two.summary.serverCpuS, (x) => x.toFixed(2)),
    );
    console.log('\none server beside two (the houses on montague.test and capulet.test):');
    printTable(rows);
  }
  console.log('\nfor context, published figures from other machines, NOT measured here:');
  console.log(`  ${PUBLISHED}`);
  console.log(
    `  (Matrix homeservers, ${play.publicBenchmark.requests} unencrypted /send requests into one room, ` +
      `users registered lazily inside the timed run; here: ${play.messages.length} end-to-end encrypted ` +
      'lines to their listeners, setup outside the timed part)',
  );
  loadAvg.end = loadavg()[0] ?? 0;
  console.log(`load average (1 min) at end: ${loadAvg.end.toFixed(2)}`);

  // `--servers 2` alone is a default run of the two-server form; any other option makes it a custom run.
  const variant = args
    .join(' ')
    .replace(/--servers[= ]2/, '')
    .trim()
    ? '-custom'
    : '';
  mkdirSync(resultsDir, { recursive: true });
  const file = join(
    resultsDir,
    `romeo-${date.slice(0, 10)}${servers > 1 ? `-${servers}servers` : ''}${variant}.json`,
  );
  const asked = forms.at(-1)!;
  writeFileSync(
    file,
    toJson({
      date,
      command,
      machine: host,
      loadAvg,
      text: relative(repoRoot, textFile),
      play: {
        characters: play.characters.size,
        speeches: play.speeches.length,
        messages: play.messages.length,
        stageDirectionLines: play.stageDirectionLines,
        headings: play.headings,
        publicBenchmark: play.publicBenchmark,
      },
      servers: placement.domains,
      ...(servers > 1
        ? {
            crossing: crossServer(play, placement),
            placement: Object.fromEntries([...placement.home].map(([c, d]) => [c, placement.domains[d]])),
          }
        : {}),
      settings: { runs, maxSendMs, drainMs: DRAIN_MS, limits: 'shipped defaults' },
      published: { figures: PUBLISHED, note: 'from other machines, not measured here' },
      summary: asked.summary,
      deferred: asked.deferred,
      ...(servers > 1
        ? {
            baseline: {
              servers: forms[0]!.servers,
              summary: forms[0]!.summary,
              deferred: forms[0]!.deferred,
            },
          }
        : {}),
      runs: forms.flatMap((f) => f.runs.map((r) => ({ servers: f.servers.length, ...r }))),
    }),
  );
  console.log(`\nwrote ${relative(process.cwd(), file)}`);
  if (profDir) console.log(`server CPU profiles in ${profDir}/<domain>/`);
}

await main();
