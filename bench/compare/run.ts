/**
 * `npm run bench:compare [-- --quick] [--messages N] [--repeats N] [--profile 1|2]`
 *
 * PMB (`pmb serve`'s server, as bench/relay starts it) beside Prosody and ejabberd, side by side in one run
 * on this machine, driven by the same load generator: N pairs exchanging 1:1 messages with the same payload
 * bytes. Profile 1: online delivery with each server's defaults. Figures are medians; nothing passes or fails.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { type Child, startChild, toJson } from '../lib/child.js';
import { printTable } from '../lib/table.js';
import { type DriveResult, drive, inBatches, type Pair, type PmbPair, pmbPair } from '../relay/load.js';
import { fsyncMs, machine, median, readProc, resetPeak } from '../relay/stats.js';
import {
  type Daemon,
  missingPeers,
  peerVersions,
  processTree,
  startEjabberd,
  startProsody,
  XMPP_DOMAIN,
} from './servers.js';
import { type XmppSession, xmppLogin } from './xmpp.js';

const { values: flags } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    messages: { type: 'string' },
    repeats: { type: 'string' },
    profile: { type: 'string', default: '1' },
  },
});
if (flags.profile !== '1') {
  // TODO(issue 5): profile 2, a durable archive on every server (PMB's store; mod_mam + SQLite on both peers).
  console.log(
    `bench:compare --profile ${flags.profile}: not yet (only profile 1, online delivery, runs today)`,
  );
  process.exit(0);
}
const quick = flags.quick === true;
const messages = Number(flags.messages ?? (quick ? 2000 : 20_000));
const settings = {
  messages,
  strictMessages: Math.max(100, Math.round(messages / 10)),
  repeats: Number(flags.repeats ?? (quick ? 1 : 3)),
  pairs: 50,
  window: 64,
  bodiesPerPair: quick ? 3 : 10,
  sendMs: quick ? 2000 : 10_000,
  drainMs: 10_000,
  warmupMessages: quick ? 200 : 1000,
};
const SCENARIOS = [
  { name: '1 pair, window 1', pairs: 1, window: 1, messages: settings.strictMessages },
  {
    name: `${settings.pairs} pairs, window ${settings.window}`,
    pairs: settings.pairs,
    window: settings.window,
    messages,
  },
];

const here = dirname(fileURLToPath(import.meta.url));
const resultsDir = join(here, '..', '..', '..', 'bench', 'results');
const mb = (x: number) => Math.round(x * 10) / 10;

/** A server under test: its root pid (its whole process tree is read from /proc) and its pairs. */
interface System {
  key: 'pmb' | 'prosody' | 'ejabberd';
  label: string;
  pid: number;
  pairs: Pair[];
}

interface Sample extends DriveResult {
  serverCpuS: number;
  serverPeakRssMb: number;
  loadCpuS: number;
  /** Median 4 KiB write+fsync in the temp dir just before the run: PMB's commits wait on it. */
  fsyncMs: number;
}

function treeCpuS(pid: number): number {
  let s = 0;
  for (const p of processTree(pid)) {
    try {
      s += readProc(p).cpuS;
    } catch {
      // Exited in between.
    }
  }
  return s;
}

function treeRss(pid: number, field: 'rssMb' | 'hwmMb'): number {
  let s = 0;
  for (const p of processTree(pid)) {
    try {
      s += readProc(p)[field];
    } catch {
      // Exited in between.
    }
  }
  return s;
}

async function measure(sys: System, pairs: Pair[], window: number, count: number): Promise<Sample> {
  const fsync = fsyncMs(tmpdir(), 20);
  const tree = processTree(sys.pid);
  const reset = tree.every((p) => resetPeak(p));
  let sampled = treeRss(sys.pid, 'rssMb');
  const sampler = setInterval(() => {
    sampled = Math.max(sampled, treeRss(sys.pid, 'rssMb'));
  }, 100);
  const cpu0 = treeCpuS(sys.pid);
  const load0 = process.cpuUsage();
  const r = await drive(pairs, {
    messages: count,
    window,
    sendMs: settings.sendMs,
    drainMs: settings.drainMs,
  });
  const load = process.cpuUsage(load0);
  const cpu1 = treeCpuS(sys.pid);
  clearInterval(sampler);
  if (!r.complete)
    console.warn(`  ! ${sys.label}: ${r.sent - r.delivered} messages undelivered after the drain`);
  return {
    ...r,
    serverCpuS: cpu1 - cpu0,
    serverPeakRssMb: reset ? treeRss(sys.pid, 'hwmMb') : Math.max(sampled, treeRss(sys.pid, 'rssMb')),
    loadCpuS: (load.user + load.system) / 1e6,
    fsyncMs: fsync,
  };
}

function summarize(samples: Sample[]) {
  const m = (f: (s: Sample) => number) => median(samples.map(f));
  const rates = samples.map((s) => s.msgsPerS);
  return {
    msgsPerS: m((s) => s.msgsPerS),
    msgsPerSRange: [Math.min(...rates), Math.max(...rates)],
    p50Ms: m((s) => s.latency.p50),
    p99Ms: m((s) => s.latency.p99),
    maxMs: m((s) => s.latency.max),
    serverCpuS: m((s) => s.serverCpuS),
    serverCpuUsPerMsg: m((s) => (s.serverCpuS / s.delivered) * 1e6),
    loadCpuS: m((s) => s.loadCpuS),
    loadCpuUsPerMsg: m((s) => (s.loadCpuS / s.delivered) * 1e6),
    serverPeakRssMb: m((s) => s.serverPeakRssMb),
    fsyncMs: m((s) => s.fsyncMs),
    incomplete: samples.filter((s) => !s.complete).length,
    runs: samples,
  };
}

/**
 * PMB's window is counted like XMPP's: a send is done when the recipient has it (XMPP has no server ack
 * without XEP-0198), and also not before PMB's own `send.ok`.
 */
function receiptWindowed(p: PmbPair): Pair {
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

const tag = Math.random().toString(36).slice(2, 8);

/** A sender and a recipient on an XMPP server; each message carries one of `bodies`, base64, in <body>. */
async function xmppPair(port: number, n: number, bodies: Uint8Array[]): Promise<Pair & { close(): void }> {
  const recipient: XmppSession = await xmppLogin(port, XMPP_DOMAIN, `r${n}x${tag}`, 'bench-password');
  const sender: XmppSession = await xmppLogin(port, XMPP_DOMAIN, `s${n}x${tag}`, 'bench-password');
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

async function main(): Promise<void> {
  const missing = missingPeers();
  if (missing) {
    console.error(`bench:compare needs Prosody and ejabberd installed.\n${missing}`);
    process.exitCode = 1;
    return;
  }
  const host = machine();
  const versions = peerVersions();
  const command = `npm run bench:compare${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`;
  const date = new Date().toISOString();
  console.log(`PMB vs Prosody vs ejabberd, profile 1 (online delivery)  ${date}`);
  console.log(`machine: ${host.nproc} cpus, ${host.cpu}, node ${host.node}, linux ${host.kernel}`);
  console.log(
    `peers: prosody ${versions.prosody}, ejabberd ${versions.ejabberd} (Erlang/OTP ${versions.erlang})`,
  );
  console.log(`command: ${command}`);
  const loadAvg = { start: loadavg()[0] ?? 0, end: 0 };
  console.log(`load average (1 min) at start: ${loadAvg.start.toFixed(2)}`);
  // PMB commits every message: the disk's fsync time is its floor (probed again before every run).
  const fsyncStart = fsyncMs(tmpdir());
  console.log(`disk: median 4 KiB write+fsync in ${tmpdir()} = ${fsyncStart.toFixed(2)} ms`);

  const pmb: Child<{ url: string }> = await startChild(join(here, '..', 'relay', 'pmb-server.js'));
  const daemons: Daemon[] = [];
  const closers: { close(): void }[] = [];
  try {
    daemons.push(await startProsody(), await startEjabberd());
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

    const setup0 = performance.now();
    // The payload is PMB's sealed OpenPGP body (a short chat line, signed and encrypted: 600-700 B, the
    // smallest a real PMB message is); the XMPP servers carry the very same bytes, base64, as OMEMO would.
    const pmbPairs = await inBatches(settings.pairs, 10, (i) =>
      pmbPair(pmb.info.url, i, settings.bodiesPerPair),
    );
    for (const p of pmbPairs) closers.push(p.sender, p.recipient);
    const bodies = pmbPairs.map((p) => p.bodies.map((e) => e.body));
    const bodySizes = bodies.flat().map((b) => b.length);
    const payload = { min: Math.min(...bodySizes), median: median(bodySizes), max: Math.max(...bodySizes) };
    const prosodyPairs = await inBatches(settings.pairs, 10, (i) => xmppPair(prosody.port, i, bodies[i]!));
    const ejabberdPairs = await inBatches(settings.pairs, 10, (i) => xmppPair(ejabberd.port, i, bodies[i]!));
    closers.push(...prosodyPairs, ...ejabberdPairs);
    console.log(
      `setup: ${settings.pairs} pairs on each server in ${((performance.now() - setup0) / 1000).toFixed(1)} s; ` +
        `payload: PMB's sealed OpenPGP bodies of ${payload.min}-${payload.max} B (median ${payload.median}), ` +
        'the same bytes base64 in the XMPP <body>\n',
    );
    const systems: System[] = [
      { key: 'pmb', label: 'PMB', pid: pmb.pid, pairs: pmbPairs.map(receiptWindowed) },
      { key: 'prosody', label: 'Prosody', pid: prosody.pid, pairs: prosodyPairs },
      { key: 'ejabberd', label: 'ejabberd', pid: ejabberd.pid, pairs: ejabberdPairs },
    ];

    const results = [];
    for (const sc of SCENARIOS) {
      const warm = Math.min(settings.warmupMessages, Math.ceil(sc.messages / 5));
      for (const s of systems) await measure(s, s.pairs.slice(0, sc.pairs), sc.window, warm);
      const samples: Record<string, Sample[]> = { pmb: [], prosody: [], ejabberd: [] };
      for (let r = 0; r < settings.repeats; r++) {
        // Rotate which server goes first so drift on a shared machine falls on all of them.
        const order = [...systems.slice(r % 3), ...systems.slice(0, r % 3)];
        for (const s of order) {
          const sample = await measure(s, s.pairs.slice(0, sc.pairs), sc.window, sc.messages);
          samples[s.key]!.push(sample);
          console.log(
            `  ${sc.name.padEnd(20)} ${s.label.padEnd(8)} run ${r + 1}: ${Math.round(sample.msgsPerS)} msgs/s, ` +
              `${sample.delivered}/${sample.sent} msgs in ${(sample.elapsedMs / 1000).toFixed(2)} s, ` +
              `p50 ${sample.latency.p50.toFixed(2)} ms p99 ${sample.latency.p99.toFixed(2)} ms, ` +
              `server CPU ${sample.serverCpuS.toFixed(2)} s`,
          );
        }
      }
      results.push({
        ...sc,
        pmb: summarize(samples.pmb!),
        prosody: summarize(samples.prosody!),
        ejabberd: summarize(samples.ejabberd!),
      });
    }

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
        'load gen µs/msg',
        'fsync ms',
      ],
    ];
    const ratios: string[][] = [
      [
        'scenario',
        'msgs/s PMB/Prosody',
        'msgs/s PMB/ejabberd',
        'CPU µs/msg PMB/Prosody',
        'CPU µs/msg PMB/ejabberd',
        'peak RSS PMB/Prosody',
        'peak RSS PMB/ejabberd',
      ],
    ];
    for (const r of results) {
      for (const s of systems) {
        const x = r[s.key];
        table.push([
          r.name,
          s.label,
          String(Math.round(x.msgsPerS)),
          x.msgsPerSRange.map((v) => Math.round(v)).join('-'),
          `${x.p50Ms.toFixed(2)} / ${x.p99Ms.toFixed(2)} / ${x.maxMs.toFixed(2)}`,
          x.serverCpuS.toFixed(2),
          x.serverCpuUsPerMsg.toFixed(0),
          mb(x.serverPeakRssMb).toFixed(1),
          x.loadCpuUsPerMsg.toFixed(0),
          x.fsyncMs.toFixed(2),
        ]);
      }
      const ratio = (f: (x: ReturnType<typeof summarize>) => number, peer: 'prosody' | 'ejabberd') =>
        (f(r.pmb) / f(r[peer])).toFixed(2);
      ratios.push([
        r.name,
        ratio((x) => x.msgsPerS, 'prosody'),
        ratio((x) => x.msgsPerS, 'ejabberd'),
        ratio((x) => x.serverCpuUsPerMsg, 'prosody'),
        ratio((x) => x.serverCpuUsPerMsg, 'ejabberd'),
        ratio((x) => x.serverPeakRssMb, 'prosody'),
        ratio((x) => x.serverPeakRssMb, 'ejabberd'),
      ]);
    }
    console.log(
      `\nmedian of ${settings.repeats} run(s); msgs/s = messages received by the recipients per second`,
    );
    printTable(table);
    console.log('');
    printTable(ratios);
    loadAvg.end = loadavg()[0] ?? 0;
    console.log(`load average (1 min) at end: ${loadAvg.end.toFixed(2)}`);

    const variant = quick ? '-quick' : process.argv.length > 2 ? '-custom' : '';
    mkdirSync(resultsDir, { recursive: true });
    const file = join(resultsDir, `compare-${date.slice(0, 10)}${variant}.json`);
    writeFileSync(
      file,
      toJson({
        date,
        command,
        machine: host,
        versions,
        profile: 1,
        settings,
        payload,
        idleRssMb,
        loadAvg,
        results,
      }),
    );
    console.log(`\nwrote ${relative(process.cwd(), file)}`);
  } finally {
    for (const c of closers) c.close();
    await Promise.all([pmb.stop(), ...daemons.map((d) => d.stop())]);
  }
}

await main();
