/**
 * `npm run bench:relay [-- --quick] [--messages N] [--repeats N] [--scenario TEXT] [--cpu-prof]`
 *
 * Durable 1:1 messages/s through one PMB server, beside a raw `ws` relay without storage (the ceiling
 * of this stack), in the same run on the same machine. Each server is a child process of its own; this
 * process is the load generator. Figures are medians of the repeats; nothing here passes or fails.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type WebSocket from 'ws';
import { type Child as ChildOf, startChild, toJson } from '../lib/child.js';
import { printTable } from '../lib/table.js';
import {
  type DriveResult,
  drive,
  inBatches,
  openWs,
  type Pair,
  type PmbPair,
  pmbPair,
  pmbUser,
  type RawPair,
  rawPair,
} from './load.js';
import { fsyncMs, machine, median, readProc, resetPeak, summarizeRuns } from './stats.js';

const { values: flags } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    messages: { type: 'string' },
    repeats: { type: 'string' },
    'cpu-prof': { type: 'boolean', default: false },
    scenario: { type: 'string' },
  },
});
const quick = flags.quick === true;
const messages = Number(flags.messages ?? (quick ? 3000 : 30_000));
const repeats = Number(flags.repeats ?? (quick ? 1 : 3));
const settings = {
  messages,
  /** The strict form waits for a commit per message: a tenth of the count, same time bound. */
  strictMessages: Math.max(100, Math.round(messages / 10)),
  repeats,
  window: 64,
  pairs: 50,
  idleConnections: 100,
  bodiesPerPair: quick ? 5 : 20,
  sendMs: quick ? 2000 : 10_000,
  drainMs: 10_000,
  warmupMessages: quick ? 300 : 2000,
};
const ALL_SCENARIOS = [
  { name: '1 pair, strict (window 1)', pairs: 1, window: 1, messages: settings.strictMessages },
  { name: `1 pair, window ${settings.window}`, pairs: 1, window: settings.window, messages },
  {
    name: `${settings.pairs} pairs, window ${settings.window}`,
    pairs: settings.pairs,
    window: settings.window,
    messages,
  },
];

/** `--scenario TEXT` keeps the scenarios whose name contains TEXT (for profiling one of them). */
const SCENARIOS = ALL_SCENARIOS.filter((s) => s.name.includes(flags.scenario ?? ''));

/** Where the PMB data dir goes (and the fsync probe runs): PMB_BENCH_DIR picks another disk. */
const dataRoot = process.env.PMB_BENCH_DIR ?? tmpdir();

const here = dirname(fileURLToPath(import.meta.url));
// dist/bench/relay -> bench/results in the source tree.
const resultsDir = join(here, '..', '..', '..', 'bench', 'results');

type Child = ChildOf<{ url: string; dir?: string; limits?: Record<string, number> }>;

function startServerChild(script: string, nodeArgs: string[] = []): Promise<Child> {
  return startChild(join(here, script), { nodeArgs, env: { PMB_BENCH_DIR: dataRoot } });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const mb = (x: number) => Math.round(x * 10) / 10;

interface Sample extends DriveResult {
  serverCpuS: number;
  loadCpuS: number;
  serverPeakRssMb: number;
  commits: number;
  /** Median 4 KiB write+fsync just before the run: the disk moves too on a shared machine. */
  fsyncMs: number;
}

/** One timed run: server CPU and peak RSS are read around it, this process's CPU too. */
async function measure(server: Child, pairs: Pair[], window: number, count: number): Promise<Sample> {
  const fsync = fsyncMs(dataRoot, 20);
  const peakReset = resetPeak(server.pid);
  let sampledPeak = readProc(server.pid).rssMb;
  const sampler = setInterval(() => {
    sampledPeak = Math.max(sampledPeak, readProc(server.pid).rssMb);
  }, 100);
  const commits0 = await server.commits();
  const cpu0 = readProc(server.pid).cpuS;
  const load0 = process.cpuUsage();
  const r = await drive(pairs, {
    messages: count,
    window,
    sendMs: settings.sendMs,
    drainMs: settings.drainMs,
  });
  const load = process.cpuUsage(load0);
  const after = readProc(server.pid);
  clearInterval(sampler);
  const commits = (await server.commits()) - commits0;
  if (!r.complete) console.warn(`  ! ${r.sent - r.delivered} messages undelivered after the drain`);
  return {
    ...r,
    serverCpuS: after.cpuS - cpu0,
    loadCpuS: (load.user + load.system) / 1e6,
    serverPeakRssMb: peakReset ? after.hwmMb : Math.max(sampledPeak, after.rssMb),
    commits,
    fsyncMs: fsync,
  };
}

function summarize(samples: Sample[]) {
  return {
    ...summarizeRuns(samples),
    msgsPerCommit: median(samples.map((s) => (s.commits > 0 ? s.delivered / s.commits : 0))),
  };
}

async function main(): Promise<void> {
  const host = machine();
  const command = `npm run bench:relay${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`;
  const date = new Date().toISOString();
  console.log(`PMB relay benchmark  ${date}`);
  console.log(`machine: ${host.nproc} cpus, ${host.cpu}, node ${host.node}, linux ${host.kernel}`);
  console.log(`command: ${command}`);
  // Other work on a shared machine shows here; compare it with the end-of-run figure printed last.
  const loadAvg = { start: loadavg()[0], end: 0 };
  console.log(`load average (1 min) at start: ${loadAvg.start?.toFixed(2)}`);

  const profDir = join(tmpdir(), `pmb-bench-prof-${process.pid}`);
  const pmb = await startServerChild(
    'pmb-server.js',
    flags['cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : [],
  );
  const raw = await startServerChild('raw-relay.js');
  const clients: { close(): void }[] = [];
  try {
    const fsync = fsyncMs(dataRoot);
    console.log(`disk: median 4 KiB write+fsync in ${dataRoot} = ${fsync.toFixed(2)} ms`);
    console.log(`PMB limits lifted for the bench: ${JSON.stringify(pmb.info.limits)}`);
    console.log(
      `settings: ${settings.messages} msgs per windowed run, ${settings.strictMessages} strict, ` +
        `each run <= ${settings.sendMs / 1000} s of sending; median of ${settings.repeats}; ` +
        `${settings.bodiesPerPair} sealed bodies per pair`,
    );

    await sleep(500);
    const idle = {
      pmbStartRssMb: mb(readProc(pmb.pid).rssMb),
      rawStartRssMb: mb(readProc(raw.pid).rssMb),
      pmbIdleConnRssMb: 0,
      rawIdleConnRssMb: 0,
      pmbAfterCloseRssMb: 0,
    };
    {
      const n = settings.idleConnections;
      const users = await inBatches(n, 10, (i) => pmbUser(pmb.info.url, `idle${i}`));
      const sockets: WebSocket[] = await inBatches(n, 10, (i) => openWs(`${raw.info.url}/?pair=idle${i}`));
      await sleep(500);
      idle.pmbIdleConnRssMb = mb(readProc(pmb.pid).rssMb);
      idle.rawIdleConnRssMb = mb(readProc(raw.pid).rssMb);
      for (const u of users) u.close();
      for (const s of sockets) s.terminate();
      await sleep(1000);
      // What stays after they leave is heap growth from the logins, not per-connection state.
      idle.pmbAfterCloseRssMb = mb(readProc(pmb.pid).rssMb);
    }
    console.log(
      `server RSS idle: PMB ${idle.pmbStartRssMb} MB after start, ${idle.pmbIdleConnRssMb} MB with ` +
        `${settings.idleConnections} idle logged-in connections, ${idle.pmbAfterCloseRssMb} MB after they closed; ` +
        `raw ws ${idle.rawStartRssMb} MB / ${idle.rawIdleConnRssMb} MB with ${settings.idleConnections} connections`,
    );

    const setup0 = performance.now();
    const pmbPairs: PmbPair[] = await inBatches(settings.pairs, 10, (i) =>
      pmbPair(pmb.info.url, i, settings.bodiesPerPair),
    );
    const rawPairs: RawPair[] = await inBatches(settings.pairs, 10, (i) =>
      rawPair(raw.info.url, i, (pmbPairs[i] as PmbPair).bodies),
    );
    for (const p of pmbPairs) clients.push(p.sender, p.recipient);
    clients.push(...rawPairs);
    const body = (pmbPairs[0] as PmbPair).bodies[0]!.body.length;
    console.log(
      `setup: ${settings.pairs} pairs on each server, bodies sealed ahead (e.g. ${body} B OpenPGP) in ` +
        `${((performance.now() - setup0) / 1000).toFixed(1)} s\n`,
    );

    const results = [];
    for (const sc of SCENARIOS) {
      const systems = [
        { key: 'pmb', server: pmb, pairs: pmbPairs.slice(0, sc.pairs) as Pair[] },
        { key: 'raw', server: raw, pairs: rawPairs.slice(0, sc.pairs) as Pair[] },
      ];
      const warm = Math.min(settings.warmupMessages, Math.ceil(sc.messages / 5));
      for (const s of systems) await measure(s.server, s.pairs, sc.window, warm);
      const samples: Record<string, Sample[]> = { pmb: [], raw: [] };
      for (let r = 0; r < settings.repeats; r++) {
        // Alternate which system goes first so drift on a shared machine falls on both.
        for (const s of r % 2 ? [...systems].reverse() : systems) {
          const sample = await measure(s.server, s.pairs, sc.window, sc.messages);
          samples[s.key]!.push(sample);
          console.log(
            `  ${sc.name.padEnd(26)} ${s.key} run ${r + 1}: ${Math.round(sample.msgsPerS)} msgs/s, ` +
              `${sample.delivered} msgs in ${(sample.elapsedMs / 1000).toFixed(2)} s, ` +
              `p50 ${sample.latency.p50.toFixed(2)} ms p99 ${sample.latency.p99.toFixed(2)} ms`,
          );
        }
      }
      results.push({ ...sc, pmb: summarize(samples.pmb!), raw: summarize(samples.raw!) });
    }

    const table: string[][] = [
      [
        'scenario',
        'PMB msgs/s',
        'raw ws msgs/s',
        'PMB/raw',
        'PMB p50/p99 ms',
        'raw p50/p99 ms',
        'server CPU s PMB/raw',
        'server peak RSS MB PMB/raw',
      ],
    ];
    const costs: string[][] = [
      [
        'scenario',
        'PMB server µs/msg',
        'raw server µs/msg',
        'load gen µs/msg PMB/raw',
        'PMB msgs/commit',
        'fsync ms',
        'PMB msgs/s range',
      ],
    ];
    for (const r of results) {
      const { pmb: p, raw: w } = r;
      table.push([
        r.name,
        String(Math.round(p.msgsPerS)),
        String(Math.round(w.msgsPerS)),
        (p.msgsPerS / w.msgsPerS).toFixed(3),
        `${p.p50Ms.toFixed(2)} / ${p.p99Ms.toFixed(2)}`,
        `${w.p50Ms.toFixed(2)} / ${w.p99Ms.toFixed(2)}`,
        `${p.serverCpuS.toFixed(2)} / ${w.serverCpuS.toFixed(2)}`,
        `${mb(p.serverPeakRssMb)} / ${mb(w.serverPeakRssMb)}`,
      ]);
      costs.push([
        r.name,
        p.serverCpuUsPerMsg.toFixed(0),
        w.serverCpuUsPerMsg.toFixed(0),
        `${p.loadCpuUsPerMsg.toFixed(0)} / ${w.loadCpuUsPerMsg.toFixed(0)}`,
        p.msgsPerCommit.toFixed(1),
        p.fsyncMs.toFixed(2),
        p.msgsPerSRange.map((x) => Math.round(x)).join('-'),
      ]);
    }
    console.log(
      `\nmedian of ${settings.repeats} run(s) each; msgs/s = messages received by the recipients per second`,
    );
    printTable(table);
    console.log('');
    printTable(costs);

    loadAvg.end = loadavg()[0] ?? 0;
    console.log(`load average (1 min) at end: ${loadAvg.end.toFixed(2)}`);
    // Only a default run is "the" figures of the day; quick and custom runs go beside it.
    const variant = quick ? '-quick' : process.argv.length > 2 ? '-custom' : '';
    mkdirSync(resultsDir, { recursive: true });
    const file = join(resultsDir, `relay-${date.slice(0, 10)}${variant}.json`);
    writeFileSync(
      file,
      toJson({
        date,
        command,
        machine: host,
        fsyncMs: fsync,
        settings,
        limits: pmb.info.limits,
        idle,
        results,
      }),
    );
    console.log(`\nwrote ${relative(process.cwd(), file)}`);
  } finally {
    for (const c of clients) c.close();
    await Promise.all([pmb.stop(), raw.stop()]);
    if (flags['cpu-prof']) console.log(`PMB server CPU profile in ${profDir}`);
  }
}

await main();
