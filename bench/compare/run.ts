/**
 * `npm run bench:compare [-- --quick] [--profile 1|2|both] [--procs N] [--messages N] [--repeats N] [--skip-idle]`
 *
 * PMB (`pmb serve`'s server, as bench/relay starts it) beside Prosody and ejabberd, side by side in one run
 * on this machine, driven by the same load generator: N pairs exchanging 1:1 messages with the same payload
 * bytes. Profile 1: online delivery with each server's defaults. Profile 2: a durable archive on every
 * server (PMB as it is; mod_mam on SQLite on both peers). The load generator runs in `--procs` child
 * processes (compare/loadgen.ts); a load generator check runs the 50-pair scenario with 1, 2 and 4 of them.
 * Then bench:idle (compare/idle.ts): idle RSS per logged-in connection at 1k and 10k, unless --skip-idle.
 * Figures are medians; nothing passes or fails.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { type Child, startChild, toJson } from '../lib/child.js';
import { printTable } from '../lib/table.js';
import {
  fsyncMs,
  type Latency,
  latency,
  machine,
  median,
  processTree,
  resetPeak,
  summarizeRuns,
  treeReading,
} from '../relay/stats.js';
import type { LoadgenArgs, RunAnswer, RunCommand, SetupAnswer, SystemKey } from './loadgen.js';
import {
  archivedRows,
  archiveJournalMode,
  type Daemon,
  missingPeers,
  peerVersions,
  startEjabberd,
  startProsody,
} from './servers.js';

const { values: flags } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    messages: { type: 'string' },
    repeats: { type: 'string' },
    profile: { type: 'string', default: 'both' },
    procs: { type: 'string', default: '2' },
    'skip-idle': { type: 'boolean', default: false },
  },
});
if (!['1', '2', 'both'].includes(flags.profile ?? '')) {
  console.error(`bench:compare: --profile is 1, 2 or both (got ${flags.profile})`);
  process.exit(2);
}
const profiles: (1 | 2)[] = flags.profile === 'both' ? [1, 2] : [Number(flags.profile) as 1 | 2];
const quick = flags.quick === true;
const messages = Number(flags.messages ?? (quick ? 2000 : 20_000));
const procs = Math.max(1, Number(flags.procs));
const settings = {
  messages,
  strictMessages: Math.max(100, Math.round(messages / 10)),
  repeats: Number(flags.repeats ?? (quick ? 1 : 3)),
  procs,
  bodiesPerPair: quick ? 3 : 10,
  /** The 500-pair scenario's pairs seal fewer bodies each, so that setting up 1000 PMB accounts stays short. */
  bodiesPerPairLarge: 2,
  sendMs: quick ? 2000 : 10_000,
  drainMs: 10_000,
  /** Profile 2's drain: long enough for the XMPP peers to deliver archiveMessages. */
  archiveDrainMs: quick ? 30_000 : 60_000,
  /** Before a run, wait at most this long for the server's CPU to go idle (profile 1, profile 2). */
  settleMaxMs: [20_000, 120_000],
  warmupMessages: quick ? 200 : 1000,
  checkProcs: [1, 2, 4],
};
/**
 * Profile 2 makes both XMPP peers slow (one SQLite transaction per archived message copy, fsynced, in
 * their single writer: 20-40 msgs/s here), and whatever is still in flight when a run stops is worked off
 * while the next server is measured. So in profile 2 the 50- and 500-pair scenarios send fewer messages
 * (all of them are in flight at once anyway: pairs x window >= messages), and the drain is long enough for
 * them to arrive; and before every run the bench waits until the server's CPU is idle (settle).
 */
const LARGE_PAIRS = quick ? 100 : 500;
const SCENARIOS = [
  {
    name: '1 pair, window 1',
    pairs: 1,
    window: 1,
    messages: settings.strictMessages,
    archiveMessages: settings.strictMessages,
  },
  { name: '50 pairs, window 64', pairs: 50, window: 64, messages, archiveMessages: quick ? 400 : 1000 },
  // Window 8: 500 x 8 = 4000 messages at most in flight, the same order as 50 x 64 = 3200, so this scenario
  // measures ten times the connections (1000 per server) rather than deeper queues. 40 messages per pair by
  // default: each pair fills its window 5 times. --quick uses 100 pairs (setting up 1000 accounts on each
  // server takes minutes here).
  {
    name: `${LARGE_PAIRS} pairs, window 8`,
    pairs: LARGE_PAIRS,
    window: 8,
    messages,
    archiveMessages: quick ? 200 : 1000,
  },
];
type Scenario = (typeof SCENARIOS)[number];
const CHECK_SCENARIO = SCENARIOS[1]!;
const MAX_PAIRS = Math.max(...SCENARIOS.map((s) => s.pairs));

const here = dirname(fileURLToPath(import.meta.url));
const resultsDir = join(here, '..', '..', '..', 'bench', 'results');
const mb = (x: number) => Math.round(x * 10) / 10;
const now = () => performance.timeOrigin + performance.now();

/** A server under test: its root pid (its whole process tree is read from /proc). */
interface System {
  key: SystemKey;
  label: string;
  pid: number;
}

/** A set of load generator children; child i owns a contiguous range of pair numbers. */
class LoadGens {
  private static nextPair = 0;
  private nextId = 1;
  private readonly waiting = new Map<number, (v: Record<string, unknown>) => void>();
  private constructor(
    readonly children: { child: Child<unknown>; from: number; count: number }[],
    readonly pairs: number,
  ) {
    for (const c of children) {
      c.child.onEvent = (e) => {
        const w = this.waiting.get(e.id as number);
        if (w) {
          this.waiting.delete(e.id as number);
          w(e);
        }
      };
    }
  }

  /** Start `n` children for `pairs` pairs in all and set their pairs up (PMB, then Prosody, then ejabberd). */
  static async start(
    n: number,
    pairs: number,
    base: Omit<LoadgenArgs, 'index' | 'from' | 'count' | 'pmbBatch'>,
  ): Promise<{ gens: LoadGens; bodySizes: number[]; setupS: Record<SystemKey, number> }> {
    const ranges = split(pairs, n);
    // Pair numbers name the accounts (PMB nicknames r<n>, s<n>): unique over every set of children.
    let from = LoadGens.nextPair;
    LoadGens.nextPair += pairs;
    const children = [];
    for (let i = 0; i < ranges.length; i++) {
      const pmbBatch = Math.max(1, Math.floor(12 / ranges.length));
      const args: LoadgenArgs = { ...base, index: i, from, count: ranges[i]!, pmbBatch };
      const child = await startChild<unknown>(join(here, 'loadgen.js'), { args: [JSON.stringify(args)] });
      children.push({ child, from, count: ranges[i]! });
      from += ranges[i]!;
    }
    const gens = new LoadGens(children, pairs);
    const answers = await Promise.all(
      children.map((c) => gens.request<SetupAnswer>(c.child, { cmd: 'setup', upTo: c.count }, 600_000)),
    );
    // The slowest child's time per server (they set up side by side).
    const slowest = (k: SystemKey) => Math.max(...answers.map((a) => a.setupS[k]));
    const setupS = { pmb: slowest('pmb'), prosody: slowest('prosody'), ejabberd: slowest('ejabberd') };
    return { gens, bodySizes: answers.flatMap((a) => a.bodySizes), setupS };
  }

  private async request<T>(
    child: Child<unknown>,
    cmd: Record<string, unknown>,
    timeoutMs: number,
  ): Promise<T> {
    const id = this.nextId++;
    const done = new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`load generator: no answer to ${cmd.cmd} in ${timeoutMs / 1000} s`));
      }, timeoutMs);
      this.waiting.set(id, (v) => {
        clearTimeout(timer);
        resolve(v);
      });
    });
    await child.ask(JSON.stringify({ ...cmd, id }));
    const v = await done;
    if (typeof v.error === 'string') throw new Error(`load generator: ${v.error}`);
    return v as T;
  }

  /** Drive `pairs` pairs, spread evenly over the children (1 pair: the first child only), and merge. */
  async run(c: Omit<RunCommand, 'pairs'> & { pairs: number }): Promise<Merged> {
    const shares = split(c.pairs, this.children.length);
    const perPair = Math.ceil(c.messages / c.pairs);
    const answers = await Promise.all(
      shares.map((share, i) =>
        this.request<RunAnswer>(
          this.children[i]!.child,
          { cmd: 'run', ...c, pairs: share, messages: share * perPair },
          c.sendMs + c.drainMs + 60_000,
        ),
      ),
    );
    return merge(answers);
  }

  async stop(): Promise<void> {
    await Promise.all(this.children.map((c) => c.child.stop()));
  }
}

/** n split into at most k near-equal positive parts. */
function split(n: number, k: number): number[] {
  const parts = Math.min(n, k);
  return Array.from({ length: parts }, (_, i) => Math.floor(n / parts) + (i < n % parts ? 1 : 0));
}

interface Merged {
  sent: number;
  delivered: number;
  complete: boolean;
  /** Earliest first send to latest last delivery over all children (the shared clock). */
  elapsedMs: number;
  msgsPerS: number;
  latency: Latency;
  /** Sum of the children's own CPU over the run. */
  loadCpuS: number;
  loadProcs: number;
}

function merge(answers: RunAnswer[]): Merged {
  const sent = answers.reduce((a, r) => a + r.sent, 0);
  const delivered = answers.reduce((a, r) => a + r.delivered, 0);
  const first = Math.min(...answers.filter((r) => r.firstSendAt > 0).map((r) => r.firstSendAt));
  const last = Math.max(...answers.map((r) => r.lastDeliveryAt));
  const elapsedMs = Number.isFinite(first) ? Math.max(0, last - first) : 0;
  return {
    sent,
    delivered,
    complete: answers.every((r) => r.complete),
    elapsedMs,
    msgsPerS: elapsedMs > 0 ? (delivered / elapsedMs) * 1000 : 0,
    latency: latency(answers.flatMap((r) => r.latencies)),
    loadCpuS: answers.reduce((a, r) => a + r.cpuS, 0),
    loadProcs: answers.length,
  };
}

interface Sample extends Merged {
  serverCpuS: number;
  serverPeakRssMb: number;
  /** Median 4 KiB write+fsync in the temp dir just before the run: PMB's commits wait on it. */
  fsyncMs: number;
  /** Waited before the run for the server to finish earlier work (CPU idle). */
  settleS: number;
}

const treeCpuS = (pid: number) => treeReading(pid).cpuS;
const treeRss = (pid: number, field: 'rssMb' | 'hwmMb') => treeReading(pid)[field];

/** Every message of a profile, warm-ups and check included, per server (reset per profile). */
const totals = {} as Record<SystemKey, { sent: number; delivered: number }>;

/** Wait until the process tree uses under 4% of a CPU over half a second (or maxMs pass); ms waited. */
async function settle(pid: number, maxMs: number): Promise<number> {
  const t0 = performance.now();
  while (performance.now() - t0 < maxMs) {
    const c0 = treeCpuS(pid);
    await new Promise((r) => setTimeout(r, 500));
    if (treeCpuS(pid) - c0 < 0.02) break;
  }
  return performance.now() - t0;
}

async function measure(
  sys: System,
  gens: LoadGens,
  sc: { pairs: number; window: number },
  count: number,
  profile: 1 | 2,
): Promise<Sample> {
  const settleMs = await settle(sys.pid, settings.settleMaxMs[profile - 1]!);
  const fsync = fsyncMs(tmpdir(), 20);
  const tree = processTree(sys.pid);
  const reset = tree.every((p) => resetPeak(p));
  let sampled = treeRss(sys.pid, 'rssMb');
  const sampler = setInterval(() => {
    sampled = Math.max(sampled, treeRss(sys.pid, 'rssMb'));
  }, 100);
  const cpu0 = treeCpuS(sys.pid);
  const r = await gens.run({
    system: sys.key,
    pairs: sc.pairs,
    window: sc.window,
    messages: count,
    sendMs: settings.sendMs,
    drainMs: profile === 2 ? settings.archiveDrainMs : settings.drainMs,
  });
  const cpu1 = treeCpuS(sys.pid);
  clearInterval(sampler);
  totals[sys.key].sent += r.sent;
  totals[sys.key].delivered += r.delivered;
  if (!r.complete)
    console.warn(`  ! ${sys.label}: ${r.sent - r.delivered} messages undelivered after the drain`);
  return {
    ...r,
    serverCpuS: cpu1 - cpu0,
    serverPeakRssMb: reset ? treeRss(sys.pid, 'hwmMb') : Math.max(sampled, treeRss(sys.pid, 'rssMb')),
    fsyncMs: fsync,
    settleS: settleMs / 1000,
  };
}

function summarize(samples: Sample[]) {
  return {
    ...summarizeRuns(samples),
    delivered: samples.reduce((a, s) => a + s.delivered, 0),
    incomplete: samples.filter((s) => !s.complete).length,
    settleS: median(samples.map((s) => s.settleS)),
  };
}
type Summary = ReturnType<typeof summarize>;
interface ScenarioResult {
  name: string;
  pairs: number;
  window: number;
  messages: number;
  loadProcs: number;
  pmb: Summary;
  prosody: Summary;
  ejabberd: Summary;
}

const line = (name: string, label: string, s: Sample, what: string) =>
  console.log(
    `  ${name.padEnd(20)} ${label.padEnd(8)} ${what}: ${Math.round(s.msgsPerS)} msgs/s, ` +
      `${s.delivered}/${s.sent} msgs in ${(s.elapsedMs / 1000).toFixed(2)} s, ` +
      `p50 ${s.latency.p50.toFixed(2)} ms p99 ${s.latency.p99.toFixed(2)} ms, ` +
      `server CPU ${s.serverCpuS.toFixed(2)} s, load gen CPU ${s.loadCpuS.toFixed(2)} s (${s.loadProcs} procs)` +
      (s.settleS > 1 ? `, settled ${s.settleS.toFixed(1)} s before` : ''),
  );

/** One profile: fresh servers, fresh accounts, every scenario, and (profile 1) the load generator check. */
async function runProfile(profile: 1 | 2) {
  const archive = profile === 2;
  console.log(
    `\n=== profile ${profile}: ${archive ? 'durable archive (PMB as is; mod_mam + SQLite on both peers)' : 'online delivery, each server as shipped'} ===`,
  );
  for (const k of ['pmb', 'prosody', 'ejabberd'] as const) totals[k] = { sent: 0, delivered: 0 };
  const pmb: Child<{ url: string }> = await startChild(join(here, '..', 'relay', 'pmb-server.js'));
  const daemons: Daemon[] = [];
  const gensToStop: LoadGens[] = [];
  try {
    daemons.push(await startProsody({ archive }), await startEjabberd({ archive }));
    const [prosody, ejabberd] = daemons as [Daemon, Daemon];
    await new Promise((r) => setTimeout(r, 1000));
    const idleRssMb = {
      pmb: mb(treeRss(pmb.pid, 'rssMb')),
      prosody: mb(treeRss(prosody.pid, 'rssMb')),
      ejabberd: mb(treeRss(ejabberd.pid, 'rssMb')),
    };
    console.log(
      `idle RSS after start: PMB ${idleRssMb.pmb} MB, Prosody ${idleRssMb.prosody} MB, ejabberd ${idleRssMb.ejabberd} MB`,
    );
    const base = { pmbUrl: pmb.info.url, prosodyPort: prosody.port, ejabberdPort: ejabberd.port };
    const systems: System[] = [
      { key: 'pmb', label: 'PMB', pid: pmb.pid },
      { key: 'prosody', label: 'Prosody', pid: prosody.pid },
      { key: 'ejabberd', label: 'ejabberd', pid: ejabberd.pid },
    ];

    // The payload is PMB's sealed OpenPGP body (a short chat line, signed and encrypted: 600-700 B, the
    // smallest a real PMB message is); the XMPP servers carry the very same bytes, base64, as OMEMO would.
    // The first 50 pairs (those of the 1- and 50-pair scenarios) seal bodiesPerPair bodies each; the 450
    // more of the 500-pair scenario seal bodiesPerPairLarge, in a second set of children.
    const setup0 = performance.now();
    const small = await LoadGens.start(procs, CHECK_SCENARIO.pairs, {
      ...base,
      bodiesPerPair: settings.bodiesPerPair,
    });
    gensToStop.push(small.gens);
    const setupText = (s: Record<SystemKey, number>) =>
      `PMB ${s.pmb.toFixed(1)} s, Prosody ${s.prosody.toFixed(1)} s, ejabberd ${s.ejabberd.toFixed(1)} s`;
    console.log(
      `setup: ${CHECK_SCENARIO.pairs} pairs on each server in ${((performance.now() - setup0) / 1000).toFixed(1)} s ` +
        `(${procs} load generator processes; ${setupText(small.setupS)})`,
    );
    const setup1 = performance.now();
    const large = await LoadGens.start(procs, MAX_PAIRS, {
      ...base,
      bodiesPerPair: settings.bodiesPerPairLarge,
    });
    gensToStop.push(large.gens);
    const setupLargeS = (performance.now() - setup1) / 1000;
    console.log(
      `setup: ${MAX_PAIRS} more pairs on each server in ${setupLargeS.toFixed(1)} s (${setupText(large.setupS)})`,
    );
    const bodySizes = small.bodySizes;
    const payload = { min: Math.min(...bodySizes), median: median(bodySizes), max: Math.max(...bodySizes) };
    console.log(
      `payload: PMB's sealed OpenPGP bodies of ${payload.min}-${payload.max} B (median ${payload.median}), ` +
        'the same bytes base64 in the XMPP <body>\n',
    );
    const gensFor = (sc: Scenario) => (sc.pairs > CHECK_SCENARIO.pairs ? large.gens : small.gens);

    const results: ScenarioResult[] = [];
    for (const sc of SCENARIOS) {
      const gens = gensFor(sc);
      const count = archive ? sc.archiveMessages : sc.messages;
      const warm = Math.min(settings.warmupMessages, Math.ceil(count / 5));
      for (const s of systems) await measure(s, gens, sc, Math.max(warm, sc.pairs), profile);
      const samples: Record<string, Sample[]> = { pmb: [], prosody: [], ejabberd: [] };
      for (let r = 0; r < settings.repeats; r++) {
        // Rotate which server goes first so drift on a shared machine falls on all of them.
        const order = [...systems.slice(r % 3), ...systems.slice(0, r % 3)];
        for (const s of order) {
          const sample = await measure(s, gens, sc, count, profile);
          samples[s.key]!.push(sample);
          line(sc.name, s.label, sample, `run ${r + 1}`);
        }
      }
      results.push({
        name: sc.name,
        pairs: sc.pairs,
        window: sc.window,
        messages: count,
        loadProcs: Math.min(procs, sc.pairs),
        pmb: summarize(samples.pmb!),
        prosody: summarize(samples.prosody!),
        ejabberd: summarize(samples.ejabberd!),
      });
    }

    // The load generator check: does adding load generator processes raise the figures? One run per server
    // and process count (not a median), with the 500-pair accounts idle and connected as in the main runs.
    const check: { procs: number; pmb: Sample; prosody: Sample; ejabberd: Sample }[] = [];
    if (profile === 1) {
      console.log(
        `\nload generator check: ${CHECK_SCENARIO.name} with ${settings.checkProcs.join(', ')} processes`,
      );
      for (const n of settings.checkProcs) {
        let gens = small.gens;
        if (n !== procs) {
          gens = (
            await LoadGens.start(n, CHECK_SCENARIO.pairs, { ...base, bodiesPerPair: settings.bodiesPerPair })
          ).gens;
          gensToStop.push(gens);
        }
        for (const s of systems) await measure(s, gens, CHECK_SCENARIO, settings.warmupMessages, profile);
        const row = {} as Record<SystemKey, Sample>;
        for (const s of systems) {
          row[s.key] = await measure(s, gens, CHECK_SCENARIO, CHECK_SCENARIO.messages, profile);
          line(CHECK_SCENARIO.name, s.label, row[s.key], `${n} procs`);
        }
        check.push({ procs: n, ...row });
        if (gens !== small.gens) {
          await gens.stop();
          gensToStop.splice(gensToStop.indexOf(gens), 1);
        }
      }
    }

    // Profile 2's proof that each peer's archive stores: its rows now, next to the messages it delivered.
    let archived: Record<string, unknown> | undefined;
    if (archive) {
      const rows = { prosody: archivedRows(prosody), ejabberd: archivedRows(ejabberd) };
      const groupCommits = await pmb.commits();
      archived = {
        prosody: { rows: rows.prosody, journalMode: archiveJournalMode(prosody), ...totals.prosody },
        ejabberd: { rows: rows.ejabberd, journalMode: archiveJournalMode(ejabberd), ...totals.ejabberd },
        pmb: { groupCommits, ...totals.pmb },
      };
      console.log(
        `\narchive (every message of this profile, warm-ups included; each peer archives a message twice, ` +
          `in the sender's and in the recipient's archive):\n` +
          `  Prosody: ${rows.prosody ?? '?'} rows in prosodyarchive for ${totals.prosody.delivered} messages delivered ` +
          `(${totals.prosody.sent} sent); SQLite journal_mode ${archiveJournalMode(prosody)}\n` +
          `  ejabberd: ${rows.ejabberd ?? '?'} rows in archive for ${totals.ejabberd.delivered} messages delivered ` +
          `(${totals.ejabberd.sent} sent); SQLite journal_mode ${archiveJournalMode(ejabberd)}\n` +
          `  PMB: ${totals.pmb.delivered} messages delivered, every one committed before its send.ok ` +
          `(${groupCommits} group commits)`,
      );
    }
    return { profile, idleRssMb, payload, setupLargeS, results, check, archived };
  } finally {
    await Promise.all(gensToStop.map((g) => g.stop()));
    await Promise.all([pmb.stop(), ...daemons.map((d) => d.stop())]);
  }
}

function printProfile(p: Awaited<ReturnType<typeof runProfile>>) {
  const labels: [SystemKey, string][] = [
    ['pmb', 'PMB'],
    ['prosody', 'Prosody'],
    ['ejabberd', 'ejabberd'],
  ];
  const table: string[][] = [
    [
      'scenario',
      'server',
      'msgs/s',
      'msgs/s range',
      'p50 / p99 / max ms',
      'server CPU s',
      'server µs/msg',
      'peak RSS MB',
      'load gen CPU s',
      'load gen µs/msg',
      'fsync ms',
      'complete',
    ],
  ];
  const ratios: string[][] = [
    [
      'scenario',
      'msgs/s PMB/Prosody',
      'msgs/s PMB/ejabberd',
      'p50 PMB/Prosody',
      'p50 PMB/ejabberd',
      'CPU µs/msg PMB/Prosody',
      'CPU µs/msg PMB/ejabberd',
      'peak RSS PMB/Prosody',
      'peak RSS PMB/ejabberd',
    ],
  ];
  for (const r of p.results) {
    for (const [key, label] of labels) {
      const x = r[key];
      table.push([
        r.name,
        label,
        String(Math.round(x.msgsPerS)),
        x.msgsPerSRange.map((v) => Math.round(v)).join('-'),
        `${x.p50Ms.toFixed(2)} / ${x.p99Ms.toFixed(2)} / ${x.maxMs.toFixed(2)}`,
        x.serverCpuS.toFixed(2),
        x.serverCpuUsPerMsg.toFixed(0),
        mb(x.serverPeakRssMb).toFixed(1),
        x.loadCpuS.toFixed(2),
        x.loadCpuUsPerMsg.toFixed(0),
        x.fsyncMs.toFixed(2),
        `${x.runs.length - x.incomplete}/${x.runs.length}`,
      ]);
    }
    const ratio = (f: (x: Summary) => number, peer: 'prosody' | 'ejabberd') =>
      (f(r.pmb) / f(r[peer])).toFixed(2);
    ratios.push([
      r.name,
      ratio((x) => x.msgsPerS, 'prosody'),
      ratio((x) => x.msgsPerS, 'ejabberd'),
      ratio((x) => x.p50Ms, 'prosody'),
      ratio((x) => x.p50Ms, 'ejabberd'),
      ratio((x) => x.serverCpuUsPerMsg, 'prosody'),
      ratio((x) => x.serverCpuUsPerMsg, 'ejabberd'),
      ratio((x) => x.serverPeakRssMb, 'prosody'),
      ratio((x) => x.serverPeakRssMb, 'ejabberd'),
    ]);
  }
  console.log(
    `\nprofile ${p.profile}: median of ${settings.repeats} run(s); msgs/s = messages received by the recipients per second`,
  );
  printTable(table);
  console.log('');
  printTable(ratios);
  if (p.check.length > 0) {
    console.log(`\nload generator check (${CHECK_SCENARIO.name}, one run each):`);
    const rows: string[][] = [
      [
        'load gen procs',
        'PMB msgs/s',
        'Prosody msgs/s',
        'ejabberd msgs/s',
        'PMB load gen µs/msg',
        'Prosody load gen µs/msg',
        'ejabberd load gen µs/msg',
      ],
    ];
    for (const c of p.check) {
      const us = (s: Sample) => ((s.loadCpuS / s.delivered) * 1e6).toFixed(0);
      rows.push([
        String(c.procs),
        String(Math.round(c.pmb.msgsPerS)),
        String(Math.round(c.prosody.msgsPerS)),
        String(Math.round(c.ejabberd.msgsPerS)),
        us(c.pmb),
        us(c.prosody),
        us(c.ejabberd),
      ]);
    }
    printTable(rows);
  }
}

async function main(): Promise<void> {
  const missing = missingPeers({ archive: profiles.includes(2) });
  if (missing) {
    console.error(`bench:compare needs Prosody and ejabberd installed.\n${missing}`);
    process.exitCode = 1;
    return;
  }
  const t0 = now();
  const host = machine();
  const versions = peerVersions();
  const command = `npm run bench:compare${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`;
  const date = new Date().toISOString();
  console.log(`PMB vs Prosody vs ejabberd, profile(s) ${profiles.join(' and ')}  ${date}`);
  console.log(`machine: ${host.nproc} cpus, ${host.cpu}, node ${host.node}, linux ${host.kernel}`);
  console.log(
    `peers: prosody ${versions.prosody}, ejabberd ${versions.ejabberd} (Erlang/OTP ${versions.erlang})`,
  );
  console.log(`command: ${command}`);
  console.log(`load generator: ${procs} processes (compare/loadgen.ts)`);
  const loadAvg = { start: loadavg()[0] ?? 0, end: 0 };
  console.log(`load average (1 min) at start: ${loadAvg.start.toFixed(2)}`);
  // PMB commits every message: the disk's fsync time is its floor (probed again before every run).
  const fsyncStart = fsyncMs(tmpdir());
  console.log(`disk: median 4 KiB write+fsync in ${tmpdir()} = ${fsyncStart.toFixed(2)} ms`);

  const done = [];
  for (const profile of profiles) done.push(await runProfile(profile));
  for (const p of done) printProfile(p);
  loadAvg.end = loadavg()[0] ?? 0;
  const durationS = (now() - t0) / 1000;
  console.log(
    `\nload average (1 min) at end: ${loadAvg.end.toFixed(2)}; took ${(durationS / 60).toFixed(1)} min`,
  );

  const variant = quick ? '-quick' : process.argv.length > 2 ? '-custom' : '';
  mkdirSync(resultsDir, { recursive: true });
  const file = join(resultsDir, `compare-${date.slice(0, 10)}${variant}.json`);
  const ratios = done.map((p) => ({
    profile: p.profile,
    scenarios: p.results.map((r) => ({
      name: r.name,
      msgsPerS: {
        prosody: r.pmb.msgsPerS / r.prosody.msgsPerS,
        ejabberd: r.pmb.msgsPerS / r.ejabberd.msgsPerS,
      },
      p50Ms: { prosody: r.pmb.p50Ms / r.prosody.p50Ms, ejabberd: r.pmb.p50Ms / r.ejabberd.p50Ms },
      p99Ms: { prosody: r.pmb.p99Ms / r.prosody.p99Ms, ejabberd: r.pmb.p99Ms / r.ejabberd.p99Ms },
      serverCpuUsPerMsg: {
        prosody: r.pmb.serverCpuUsPerMsg / r.prosody.serverCpuUsPerMsg,
        ejabberd: r.pmb.serverCpuUsPerMsg / r.ejabberd.serverCpuUsPerMsg,
      },
      serverPeakRssMb: {
        prosody: r.pmb.serverPeakRssMb / r.prosody.serverPeakRssMb,
        ejabberd: r.pmb.serverPeakRssMb / r.ejabberd.serverPeakRssMb,
      },
    })),
  }));
  writeFileSync(
    file,
    toJson({
      date,
      command,
      durationS,
      machine: host,
      versions,
      profiles,
      procs,
      settings,
      loadAvg,
      // Raw latencies stay out of the file: each run keeps its merged percentiles.
      profileResults: done,
      ratios,
    }),
  );
  console.log(`\nwrote ${relative(process.cwd(), file)}`);

  // Then idle RSS per logged-in connection at 1k and 10k (200 and 1k with --quick): bench:idle as a child,
  // which raises its own open-files limit, prints its table and writes bench/results/idle-<date>.json.
  if (flags['skip-idle']) return;
  console.log('\n=== idle connections (npm run bench:idle) ===');
  const idle = spawnSync(process.execPath, [join(here, 'idle.js'), ...(quick ? ['--quick'] : [])], {
    stdio: 'inherit',
  });
  if (idle.status !== 0) process.exitCode = idle.status ?? 1;
}

await main();
