/**
 * `npm run bench:federation [-- --quick] [--part messages|location] [--messages N] [--repeats N] [--moves N]`
 *
 * Federation (issue 4), two questions, each beside a baseline measured in the same run on the same machine:
 * 1. Messages: durable 1:1 messages/s and send -> deliver latency with the sender on server A and the
 *    recipient on server B (two linked server processes), beside the same load with both on server A.
 * 2. Location: after an account moves (`login({ move: true })`), how long until every server of a
 *    federation of 3 and of 10 server processes knows the new location, beside two linked servers.
 * Servers are child processes (bench/federation/server.ts); this process is the load generator and clock.
 * Figures are medians; nothing here passes or fails.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { PmbClient, type WebSocketFactory } from '../../src/client/index.js';
import { generateIdentity } from '../../src/crypto/index.js';
import { type Child, freePort, startChild, toJson } from '../lib/child.js';
import { printTable } from '../lib/table.js';
import { type DriveResult, drive, inBatches } from '../relay/load.js';
import { fsyncMs, machine, median, readProc } from '../relay/stats.js';
import { type CountedPair, countedPair, losses } from './load.js';
import type { ServerOptions } from './server.js';

const { values: flags } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    part: { type: 'string', default: 'all' },
    messages: { type: 'string' },
    repeats: { type: 'string' },
    moves: { type: 'string' },
    'max-minutes': { type: 'string', default: '20' },
    'cpu-prof': { type: 'boolean', default: false },
  },
});
const quick = flags.quick === true;
const messages = Number(flags.messages ?? (quick ? 1500 : 5000));
const settings = {
  messages,
  /** The strict form waits for a commit per message: a fifth of the count, same time bound. */
  strictMessages: Math.max(100, Math.round(messages / 5)),
  repeats: Number(flags.repeats ?? (quick ? 1 : 3)),
  window: 64,
  pairs: 10,
  bodiesPerPair: quick ? 5 : 20,
  sendMs: quick ? 3000 : 10_000,
  /**
   * After sending stops, wait at most this long for the last deliveries. Across servers the sender's window
   * is against its own server's durable ack, which does not wait for the outbox: a backlog builds there.
   */
  drainMs: quick ? 30_000 : 60_000,
  /** Before each run, wait at most this long for A's outbox to be empty, so no run inherits a backlog. */
  settleMs: 60_000,
  warmupMessages: quick ? 300 : 1000,
  /** Moves per federation, alternating between s1 and the server farthest from it. */
  moves: Math.min(50, Number(flags.moves ?? (quick ? 4 : 10))),
  /** Wait at most this long for every server to report one move. */
  moveWaitMs: 10_000,
  /** Wait at most this long for a federation's links, pinned keys and directory to settle. */
  readyMs: 30_000,
  maxMinutes: Number(flags['max-minutes']),
};
const parts = flags.part === 'all' ? ['messages', 'location'] : [flags.part as string];

const here = dirname(fileURLToPath(import.meta.url));
// dist/bench/federation -> bench/results in the source tree.
const resultsDir = join(here, '..', '..', '..', 'bench', 'results');
const dataRoot = process.env.PMB_BENCH_DIR ?? tmpdir();
const NodeWebSocket = WebSocket as unknown as WebSocketFactory;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const clock = () => performance.timeOrigin + performance.now();
/** `--cpu-prof`: every server child writes a .cpuprofile here (named by its pid). */
const profDir = flags['cpu-prof'] ? join(tmpdir(), `pmb-bench-fed-prof-${process.pid}`) : undefined;
const f2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : '–');

type Server = Child<{ url: string; domain: string; fingerprint: string }>;

interface Node {
  index: number;
  domain: string;
  url: string;
  child: Server;
  neighbors: number[];
}

interface Federation {
  nodes: Node[];
  edges: [number, number][];
  close(): Promise<void>;
}

interface NodeState {
  links: string[];
  pinned: number;
  known: boolean;
  location: string | null;
  outbox: number;
}

/**
 * n server processes s1.test..sn.test on free ports. Each is given its neighbours in `edges` as peers (it
 * keeps a link to each from the start, as `pmb serve --peer` does) and only them in its resolve map
 * (`--resolve`), so it cannot open a link to anyone else: records reach the others hop by hop.
 */
async function startFederation(
  n: number,
  edges: [number, number][],
  liftLimits: boolean,
): Promise<Federation> {
  const domains = Array.from({ length: n }, (_, i) => `s${i + 1}.test`);
  const ports: number[] = [];
  for (let i = 0; i < n; i++) ports.push(await freePort());
  const neighbors = domains.map(() => new Set<number>());
  for (const [a, b] of edges) {
    neighbors[a]!.add(b);
    neighbors[b]!.add(a);
  }
  const settled = await Promise.allSettled(
    domains.map((domain, i) => {
      const peers = [...neighbors[i]!].sort((x, y) => x - y);
      const options: ServerOptions = {
        domain,
        port: ports[i]!,
        peers: peers.map((j) => domains[j]!),
        resolve: Object.fromEntries(peers.map((j) => [domains[j]!, `127.0.0.1:${ports[j]}`])),
        domains,
        liftLimits,
      };
      return startChild<Server['info']>(join(here, 'server.js'), {
        args: [JSON.stringify(options)],
        nodeArgs: profDir ? ['--cpu-prof', `--cpu-prof-dir=${join(profDir, `${n}-servers`, domain)}`] : [],
        env: { PMB_BENCH_DIR: dataRoot },
      });
    }),
  );
  const children = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const close = async () => {
    await Promise.all(children.map((c) => c.stop()));
  };
  const failed = settled.find((s) => s.status === 'rejected');
  if (failed) {
    await close();
    throw (failed as PromiseRejectedResult).reason;
  }
  const nodes = children.map((child, index) => ({
    index,
    domain: domains[index]!,
    url: child.info.url,
    child,
    neighbors: [...neighbors[index]!].sort((x, y) => x - y),
  }));
  return { nodes, edges, close };
}

/** Poll every server's state until `ok` holds for all of them, for at most settings.readyMs. */
async function waitFor(fed: Federation, what: string, ok: (s: NodeState, n: Node) => boolean, fp = '') {
  const until = performance.now() + settings.readyMs;
  for (;;) {
    const states = await Promise.all(fed.nodes.map((n) => n.child.ask<NodeState>(`state ${fp}`)));
    if (states.every((s, i) => ok(s, fed.nodes[i]!))) return states;
    if (performance.now() > until) {
      const bad = states.flatMap((s, i) =>
        ok(s, fed.nodes[i]!) ? [] : [`${fed.nodes[i]!.domain} ${JSON.stringify(s)}`],
      );
      throw new Error(`${what}: not reached in ${settings.readyMs / 1000} s: ${bad.join('; ')}`);
    }
    await sleep(50);
  }
}

/** Every server has exactly its neighbours as open links and a pinned key for every domain. */
function linked(fed: Federation) {
  return waitFor(
    fed,
    'links and server records',
    (s, n) =>
      s.links.join() ===
        n.neighbors
          .map((j) => fed.nodes[j]!.domain)
          .sort()
          .join() && s.pinned === fed.nodes.length,
  );
}

/**
 * The children's clocks against this one: each `clock` answer should lie between the parent's send and
 * receipt. Offset = child - midpoint, from the quickest of 10 round trips per child, after a pause so the
 * children are idle (a busy child answers late and only widens the bound).
 */
async function clockCheck(fed: Federation): Promise<{ maxOffsetMs: number; maxRttMs: number }> {
  let maxOffsetMs = 0;
  let maxRttMs = 0;
  await sleep(500);
  for (const n of fed.nodes) {
    let best = { rtt: Number.POSITIVE_INFINITY, offset: 0 };
    for (let k = 0; k < 10; k++) {
      const t0 = clock();
      const { now } = await n.child.ask<{ now: number }>('clock');
      const t1 = clock();
      if (t1 - t0 < best.rtt) best = { rtt: t1 - t0, offset: now - (t0 + t1) / 2 };
    }
    maxOffsetMs = Math.max(maxOffsetMs, Math.abs(best.offset));
    maxRttMs = Math.max(maxRttMs, best.rtt);
  }
  return { maxOffsetMs, maxRttMs };
}

// ---------------------------------------------------------------------------------------------------------
// Part 1: cross-server messages beside one server

/** Wait until A's outbox is empty, for at most maxMs; returns the rows left. */
async function settle(fed: Federation, maxMs: number): Promise<number> {
  const until = performance.now() + maxMs;
  for (;;) {
    const { outbox } = await fed.nodes[0]!.child.ask<NodeState>('state');
    if (outbox === 0 || performance.now() > until) return outbox;
    await sleep(50);
  }
}

interface Sample extends DriveResult {
  /** Sends acknowledged by A (send.ok) per second: how fast the senders went. */
  ackedPerS: number;
  /** Rows in A's outbox when the run started (0 unless the settle wait timed out). */
  backlogBefore: number;
  /** CPU seconds of server A and server B during the run. */
  cpuS: [number, number];
  commits: [number, number];
  loadCpuS: number;
  fsyncMs: number;
}

async function measure(
  fed: Federation,
  pairs: CountedPair[],
  window: number,
  count: number,
): Promise<Sample> {
  const servers = fed.nodes.map((n) => n.child);
  const backlog = await settle(fed, settings.settleMs);
  if (backlog > 0)
    console.warn(`  ! ${backlog} rows still in A's outbox after ${settings.settleMs / 1000} s`);
  const fsync = fsyncMs(dataRoot, 20);
  const commits0 = await Promise.all(servers.map((s) => s.commits()));
  const cpu0 = servers.map((s) => readProc(s.pid).cpuS);
  const load0 = process.cpuUsage();
  const t0 = performance.now();
  const r = await drive(pairs, {
    messages: count,
    window,
    sendMs: settings.sendMs,
    drainMs: settings.drainMs,
  });
  const load = process.cpuUsage(load0);
  const cpu1 = servers.map((s) => readProc(s.pid).cpuS);
  const commits1 = await Promise.all(servers.map((s) => s.commits()));
  if (!r.complete) console.warn(`  ! ${r.sent - r.delivered} messages not delivered within the drain`);
  const lastAck = Math.max(...pairs.map((p) => p.lastAckAt));
  return {
    ...r,
    ackedPerS: lastAck > t0 ? (r.sent / (lastAck - t0)) * 1000 : 0,
    backlogBefore: backlog,
    cpuS: [cpu1[0]! - cpu0[0]!, cpu1[1]! - cpu0[1]!],
    commits: [commits1[0]! - commits0[0]!, commits1[1]! - commits0[1]!],
    loadCpuS: (load.user + load.system) / 1e6,
    fsyncMs: fsync,
  };
}

function summarize(samples: Sample[]) {
  const m = (f: (s: Sample) => number) => median(samples.map(f));
  const rates = samples.map((s) => s.msgsPerS);
  return {
    msgsPerS: m((s) => s.msgsPerS),
    ackedPerS: m((s) => s.ackedPerS),
    msgsPerSRange: [Math.min(...rates), Math.max(...rates)],
    p50Ms: m((s) => s.latency.p50),
    p99Ms: m((s) => s.latency.p99),
    maxMs: m((s) => s.latency.max),
    serverCpuUsPerMsg: m((s) => ((s.cpuS[0] + s.cpuS[1]) / s.delivered) * 1e6),
    serverACpuUsPerMsg: m((s) => (s.cpuS[0] / s.delivered) * 1e6),
    serverBCpuUsPerMsg: m((s) => (s.cpuS[1] / s.delivered) * 1e6),
    loadCpuUsPerMsg: m((s) => (s.loadCpuS / s.delivered) * 1e6),
    msgsPerCommitA: m((s) => (s.commits[0] ? s.delivered / s.commits[0] : 0)),
    msgsPerCommitB: m((s) => (s.commits[1] ? s.delivered / s.commits[1] : 0)),
    fsyncMs: m((s) => s.fsyncMs),
    incompleteRuns: samples.filter((s) => !s.complete).length,
    runs: samples,
  };
}

async function messagesPart() {
  console.log(
    '\n== Part 1: messages. Sender on s1.test (A), recipient on s2.test (B), two linked server processes; ' +
      'baseline: sender and recipient both on A',
  );
  console.log(
    `settings: ${settings.messages} msgs per windowed run, ${settings.strictMessages} strict, each run <= ` +
      `${settings.sendMs / 1000} s of sending + ${settings.drainMs / 1000} s drain; median of ${settings.repeats}; ` +
      `${settings.pairs} pairs of each kind; A and B lift framesPerSecond and connectionsPerAddress as bench:relay`,
  );
  const fed = await startFederation(2, [[0, 1]], true);
  const all: CountedPair[] = [];
  try {
    await linked(fed);
    const [A, B] = fed.nodes as [Node, Node];
    const setup0 = performance.now();
    const federated = await inBatches(settings.pairs, 5, (i) =>
      countedPair(A.url, B.url, `f${i}`, settings.bodiesPerPair),
    );
    all.push(...federated);
    const single = await inBatches(settings.pairs, 5, (i) =>
      countedPair(A.url, A.url, `l${i}`, settings.bodiesPerPair),
    );
    all.push(...single);
    console.log(
      `setup: ${settings.pairs} federated + ${settings.pairs} one-server pairs, bodies sealed ahead, in ` +
        `${((performance.now() - setup0) / 1000).toFixed(1)} s\n`,
    );
    const scenarios = [
      { name: '1 pair, strict (window 1)', pairs: 1, window: 1, messages: settings.strictMessages },
      { name: `1 pair, window ${settings.window}`, pairs: 1, window: settings.window, messages },
      {
        name: `${settings.pairs} pairs, window ${settings.window}`,
        pairs: settings.pairs,
        window: settings.window,
        messages,
      },
    ];
    const results = [];
    for (const sc of scenarios) {
      const systems = [
        { key: 'federated', pairs: federated.slice(0, sc.pairs) },
        { key: 'single', pairs: single.slice(0, sc.pairs) },
      ];
      const warm = Math.min(settings.warmupMessages, Math.ceil(sc.messages / 5));
      for (const s of systems) await measure(fed, s.pairs, sc.window, warm);
      const samples: Record<string, Sample[]> = { federated: [], single: [] };
      for (let r = 0; r < settings.repeats; r++) {
        // Alternate which goes first, so drift on a shared machine falls on both.
        for (const s of r % 2 ? [...systems].reverse() : systems) {
          const sample = await measure(fed, s.pairs, sc.window, sc.messages);
          samples[s.key]!.push(sample);
          console.log(
            `  ${sc.name.padEnd(26)} ${s.key.padEnd(9)} run ${r + 1}: ${Math.round(sample.msgsPerS)} msgs/s, ` +
              `${sample.delivered}/${sample.sent} msgs in ${(sample.elapsedMs / 1000).toFixed(2)} s, ` +
              `p50 ${f2(sample.latency.p50)} ms p99 ${f2(sample.latency.p99)} ms`,
          );
        }
      }
      results.push({ ...sc, federated: summarize(samples.federated!), single: summarize(samples.single!) });
    }

    // Whatever is still on its way gets a bounded last chance before lost and duplicated are counted.
    await settle(fed, settings.settleMs);
    const until = performance.now() + settings.drainMs;
    while (performance.now() < until && losses(all).lost > 0) await sleep(50);
    const outboxLeft = (await A.child.ask<NodeState>('state')).outbox;
    const counts = { federated: losses(federated), single: losses(single), outboxLeft };

    const table: string[][] = [
      [
        'scenario',
        'federated msgs/s',
        'one server msgs/s',
        'fed/single',
        'fed p50/p99 ms',
        'single p50/p99 ms',
        'server CPU µs/msg fed (A+B) / single',
        'msgs/commit fed A / B',
      ],
    ];
    for (const r of results) {
      const { federated: f, single: s } = r;
      table.push([
        r.name,
        String(Math.round(f.msgsPerS)),
        String(Math.round(s.msgsPerS)),
        (f.msgsPerS / s.msgsPerS).toFixed(3),
        `${f2(f.p50Ms)} / ${f2(f.p99Ms)}`,
        `${f2(s.p50Ms)} / ${f2(s.p99Ms)}`,
        `${f.serverCpuUsPerMsg.toFixed(0)} (${f.serverACpuUsPerMsg.toFixed(0)}+${f.serverBCpuUsPerMsg.toFixed(0)}) / ${s.serverCpuUsPerMsg.toFixed(0)}`,
        `${f.msgsPerCommitA.toFixed(1)} / ${f.msgsPerCommitB.toFixed(1)}`,
      ]);
    }
    console.log(
      `\nmedian of ${settings.repeats} run(s) each; msgs/s = messages received by the recipients per second; ` +
        'latency = send -> the recipient deliver frame',
    );
    printTable(table);
    const ranges: string[][] = [
      [
        'scenario',
        'fed msgs/s range',
        'single msgs/s range',
        'sends acked/s fed / single',
        'fsync ms',
        'incomplete runs fed / single',
      ],
    ];
    for (const r of results) {
      ranges.push([
        r.name,
        r.federated.msgsPerSRange.map((x) => Math.round(x)).join('-'),
        r.single.msgsPerSRange.map((x) => Math.round(x)).join('-'),
        `${Math.round(r.federated.ackedPerS)} / ${Math.round(r.single.ackedPerS)}`,
        f2(r.federated.fsyncMs),
        `${r.federated.incompleteRuns} / ${r.single.incompleteRuns}`,
      ]);
    }
    console.log('');
    printTable(ranges);
    console.log('');
    printTable([
      ['all runs, warm-ups included', 'acked (send.ok)', 'received', 'lost', 'duplicated'],
      ...(['federated', 'single'] as const).map((k) => [
        k,
        String(counts[k].acked),
        String(counts[k].delivered),
        String(counts[k].lost),
        String(counts[k].duplicated),
      ]),
    ]);
    console.log(`outbox rows left on A at the end: ${outboxLeft}`);
    return { settings: { ...settings }, results, counts };
  } finally {
    for (const p of all) p.close();
    await fed.close();
  }
}

// ---------------------------------------------------------------------------------------------------------
// Part 2: location propagation

/** Hops from `from` to every server (breadth-first over the links). */
function hops(n: number, edges: [number, number][], from: number): number[] {
  const dist = Array.from({ length: n }, () => Number.POSITIVE_INFINITY);
  dist[from] = 0;
  const queue = [from];
  while (queue.length) {
    const a = queue.shift()!;
    for (const [x, y] of edges) {
      const b = x === a ? y : y === a ? x : -1;
      if (b >= 0 && dist[b] === Number.POSITIVE_INFINITY) {
        dist[b] = dist[a]! + 1;
        queue.push(b);
      }
    }
  }
  return dist;
}

/** A ring s1..sn plus a chord from each server to the one across (i <-> i + n/2): 3 links each for even n. */
function ringWithChords(n: number): [number, number][] {
  const edges: [number, number][] = [];
  for (let i = 0; i < n; i++) edges.push([i, (i + 1) % n]);
  for (let i = 0; i < n / 2; i++) edges.push([i, i + Math.floor(n / 2)]);
  return edges;
}

const TOPOLOGIES: { name: string; n: number; edges: [number, number][]; shape: string }[] = [
  { name: '2 servers (baseline)', n: 2, edges: [[0, 1]], shape: 's1-s2, one link: a direct push' },
  {
    name: '3 servers',
    n: 3,
    edges: [
      [0, 1],
      [1, 2],
    ],
    shape: 'a line s1-s2-s3 (a ring of 3 would link everyone directly)',
  },
  {
    name: '10 servers',
    n: 10,
    edges: ringWithChords(10),
    shape: 'a ring s1-s2-...-s10-s1 plus chords across (s1-s6, s2-s7, ... s5-s10): 3 links per server',
  },
];

interface Move {
  from: string;
  to: string;
  /** login({ move: true }) from its start to its answer (login + lookup + sign + record.publish). */
  loginMoveMs: number;
  /** The publishing server's COMMIT of the record -> the client's publish ack. */
  commitToAckMs: number;
  /** Publish ack -> the last other server's COMMIT (child clocks). */
  ackToAllMs: number;
  /** The same from the parent's receipt of each event line (cross-check of the child clocks). */
  ackToAllByReceiptMs: number;
  /** The publishing server's COMMIT -> the last other server's COMMIT. */
  commitToAllMs: number;
  /** CPU of all the servers together from the start of the login to the last report (10 ms ticks). */
  serversCpuMs: number;
  /** Per server: hops from the publisher, ms after the publisher's commit; missing: not reported in time. */
  servers: { domain: string; hops: number; ms: number | null }[];
  complete: boolean;
}

async function locationOne(topo: (typeof TOPOLOGIES)[number]) {
  const fed = await startFederation(topo.n, topo.edges, false);
  let client: PmbClient | undefined;
  try {
    const t0 = performance.now();
    await linked(fed);
    const readyS = (performance.now() - t0) / 1000;
    const clocks = await clockCheck(fed);
    const d0 = hops(topo.n, topo.edges, 0);
    const far = d0.indexOf(Math.max(...d0));
    const diameter = Math.max(...fed.nodes.map((n) => Math.max(...hops(topo.n, topo.edges, n.index))));

    const { identity } = await generateIdentity({ userId: 'wanderer' });
    const fp = identity.fingerprint;
    client = await PmbClient.connect({
      url: fed.nodes[0]!.url,
      WebSocket: NodeWebSocket,
      identity,
      device: 'd0',
    });
    await client.register('wanderer');
    await client.login();
    await waitFor(fed, 'the account replicated', (s) => s.known && s.location === 's1.test', fp);
    console.log(
      `  ${topo.name}: ${topo.shape}; ${fed.edges.length} links, diameter ${diameter} hops; ready in ` +
        `${readyS.toFixed(1)} s; moves between s1 and ${fed.nodes[far]!.domain} (${d0[far]} hops apart); ` +
        `child clocks within ${clocks.maxOffsetMs.toFixed(3)} ms of this one (round trip <= ${clocks.maxRttMs.toFixed(2)} ms)`,
    );

    let seen = new Map<number, { t: number; receivedAt: number }>();
    let want = '';
    for (const n of fed.nodes) {
      n.child.onEvent = (e, receivedAt) => {
        if (e.event !== 'location' || e.subject !== fp || e.domain !== want || seen.has(n.index)) return;
        seen.set(n.index, { t: e.t as number, receivedAt });
      };
    }
    const moves: Move[] = [];
    for (let k = 0; k < settings.moves; k++) {
      const target = k % 2 === 0 ? far : 0;
      const origin = k % 2 === 0 ? 0 : far;
      const node = fed.nodes[target]!;
      seen = new Map();
      want = node.domain;
      const next = await PmbClient.connect({
        url: node.url,
        WebSocket: NodeWebSocket,
        identity,
        device: `d${k + 1}`,
      });
      const cpu0 = fed.nodes.map((n) => readProc(n.child.pid).cpuS);
      const tStart = clock();
      await next.login({ move: true });
      const tAck = clock();
      const until = performance.now() + settings.moveWaitMs;
      while (seen.size < topo.n && performance.now() < until) await sleep(2);
      const cpuS = fed.nodes.reduce((a, n, i) => a + readProc(n.child.pid).cpuS - cpu0[i]!, 0);
      client.close();
      client = next;
      const dist = hops(topo.n, topo.edges, target);
      const home = seen.get(target);
      const others = [...seen.entries()].filter(([i]) => i !== target).map(([, v]) => v);
      const lastT = Math.max(...others.map((v) => v.t));
      const lastRecv = Math.max(...others.map((v) => v.receivedAt));
      const complete = seen.size === topo.n;
      const move: Move = {
        from: fed.nodes[origin]!.domain,
        to: node.domain,
        loginMoveMs: tAck - tStart,
        commitToAckMs: home ? tAck - home.t : Number.NaN,
        ackToAllMs: complete ? lastT - tAck : Number.NaN,
        ackToAllByReceiptMs: complete ? lastRecv - tAck : Number.NaN,
        commitToAllMs: complete && home ? lastT - home.t : Number.NaN,
        serversCpuMs: cpuS * 1000,
        servers: fed.nodes.map((n) => {
          const s = seen.get(n.index);
          return { domain: n.domain, hops: dist[n.index]!, ms: s && home ? s.t - home.t : null };
        }),
        complete,
      };
      moves.push(move);
      console.log(
        `    move ${k + 1} ${move.from} -> ${move.to}: ack -> every server ${f2(move.ackToAllMs)} ms ` +
          `(by receipt ${f2(move.ackToAllByReceiptMs)}), publisher commit -> every server ${f2(move.commitToAllMs)} ms, ` +
          `login+move ${f2(move.loginMoveMs)} ms, servers' CPU ${move.serversCpuMs.toFixed(0)} ms` +
          (complete
            ? ''
            : `  ! INCOMPLETE: ${topo.n - seen.size} server(s) did not report in ${settings.moveWaitMs / 1000} s`),
      );
      await sleep(200);
    }
    const done = moves.filter((m) => m.complete);
    const med = (f: (m: Move) => number) => median(done.map(f));
    const max = (f: (m: Move) => number) => Math.max(...done.map(f));
    const maxHops = Math.max(...moves.flatMap((m) => m.servers.map((s) => s.hops)));
    const perHop: number[] = [];
    for (let h = 1; h <= maxHops; h++) {
      perHop.push(
        median(
          moves.flatMap((m) => m.servers.filter((s) => s.hops === h && s.ms !== null).map((s) => s.ms!)),
        ),
      );
    }
    return {
      name: topo.name,
      servers: topo.n,
      shape: topo.shape,
      links: fed.edges.length,
      diameter,
      movesBetween: ['s1.test', fed.nodes[far]!.domain],
      farthestHops: maxHops,
      clocks,
      moves: moves.length,
      completeMoves: done.length,
      ackToAllMedianMs: med((m) => m.ackToAllMs),
      ackToAllMaxMs: max((m) => m.ackToAllMs),
      ackToAllByReceiptMedianMs: med((m) => m.ackToAllByReceiptMs),
      commitToAllMedianMs: med((m) => m.commitToAllMs),
      commitToAllMaxMs: max((m) => m.commitToAllMs),
      commitToAckMedianMs: med((m) => m.commitToAckMs),
      loginMoveMedianMs: med((m) => m.loginMoveMs),
      serversCpuMedianMs: med((m) => m.serversCpuMs),
      /** Median ms after the publisher's commit, for the servers 1, 2, ... hops away. */
      perHopMedianMs: perHop,
      runs: moves,
    };
  } finally {
    client?.close();
    await fed.close();
  }
}

async function locationPart() {
  console.log(
    '\n== Part 2: location. A user registered on s1 logs in elsewhere with login({ move: true }); each server ' +
      'reports when its view of the location changed (a bench hook just after the COMMIT of the record)',
  );
  console.log(
    `settings: ${settings.moves} moves per federation, alternating; each waits at most ` +
      `${settings.moveWaitMs / 1000} s for every server; every limit at the shipped default`,
  );
  const results = [];
  for (const topo of TOPOLOGIES) results.push(await locationOne(topo));
  const base = results[0]!;
  const table: string[][] = [
    [
      'federation',
      'links',
      'hops (moves)',
      'moves',
      'ack -> every server ms, median / max',
      'publisher commit -> every server ms, median / max',
      'vs 2 servers',
      'per hop ms (1 / 2 / 3 ...)',
      "servers' CPU ms per move",
    ],
  ];
  for (const r of results) {
    table.push([
      r.name,
      String(r.links),
      String(r.farthestHops),
      `${r.completeMoves}/${r.moves}`,
      `${f2(r.ackToAllMedianMs)} / ${f2(r.ackToAllMaxMs)}`,
      `${f2(r.commitToAllMedianMs)} / ${f2(r.commitToAllMaxMs)}`,
      (r.ackToAllMedianMs / base.ackToAllMedianMs).toFixed(2),
      r.perHopMedianMs.map(f2).join(' / '),
      r.serversCpuMedianMs.toFixed(0),
    ]);
  }
  console.log(
    '\nmedians over the moves; "per hop": median time after the publishing server committed, for the servers ' +
      'that many hops from it',
  );
  printTable(table);
  console.log(
    `publisher commit -> client ack, median: ${results.map((r) => `${r.name} ${f2(r.commitToAckMedianMs)} ms`).join(', ')}; ` +
      `login({ move: true }) in all, median: ${results.map((r) => `${f2(r.loginMoveMedianMs)} ms`).join(', ')}`,
  );
  return results;
}

async function main(): Promise<void> {
  const host = machine();
  const args = process.argv.slice(2);
  const command = `npm run bench:federation${args.length ? ` -- ${args.join(' ')}` : ''}`;
  const date = new Date().toISOString();
  // A hard bound on the whole run: the children exit (and remove their data dirs) when our pipes close.
  setTimeout(() => {
    console.error(`\nbench:federation: stopped after ${settings.maxMinutes} min (--max-minutes)`);
    process.exit(2);
  }, settings.maxMinutes * 60_000).unref();
  console.log(`PMB federation benchmark  ${date}`);
  console.log(`machine: ${host.nproc} cpus, ${host.cpu}, node ${host.node}, linux ${host.kernel}`);
  console.log(`command: ${command}`);
  const loadAvg = { start: loadavg()[0] ?? 0, end: 0 };
  console.log(`load average (1 min) at start: ${loadAvg.start.toFixed(2)}`);
  const fsync = fsyncMs(dataRoot);
  console.log(`disk: median 4 KiB write+fsync in ${dataRoot} = ${fsync.toFixed(2)} ms`);

  const messagesResult = parts.includes('messages') ? await messagesPart() : undefined;
  const locationResult = parts.includes('location') ? await locationPart() : undefined;

  loadAvg.end = loadavg()[0] ?? 0;
  console.log(`\nload average (1 min) at end: ${loadAvg.end.toFixed(2)}`);
  const variant = quick ? '-quick' : args.length ? '-custom' : '';
  mkdirSync(resultsDir, { recursive: true });
  const file = join(resultsDir, `federation-${date.slice(0, 10)}${variant}.json`);
  writeFileSync(
    file,
    toJson({
      date,
      command,
      machine: host,
      loadAvg,
      fsyncMs: fsync,
      messages: messagesResult,
      location: locationResult,
    }),
  );
  console.log(`wrote ${relative(process.cwd(), file)}`);
  if (profDir) console.log(`server CPU profiles in ${profDir}/<federation size>-servers/<domain>/`);
}

await main();
