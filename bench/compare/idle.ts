/**
 * `npm run bench:idle [-- --quick] [--counts 1000,10000] [--procs 4] [--servers pmb,prosody,ejabberd]`
 *
 * Idle RSS per authenticated connection: for each server in turn (PMB's `pmb serve` server as bench/relay
 * starts it, Prosody, ejabberd), and for each count N, a fresh instance: its idle RSS (whole process tree),
 * then N authenticated connections left idle (PMB: registered and logged in; XMPP: in-band registration,
 * SASL PLAIN, bind, presence), opened by `--procs` child processes each from its own 127.0.X.Y; the RSS once
 * it has settled; then a ping round trip on every connection to check that all N are still there.
 * KB/connection = (RSS with N - idle RSS) / N: it includes whatever registering and logging in N accounts
 * left in the server's heap, not only the sockets.
 *
 * `measureIdle(opts)` runs it from another bench (bench/compare/run.ts may call it).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { type Child, startChild, toJson } from '../lib/child.js';
import { printTable } from '../lib/table.js';
import { machine, treeReading } from '../relay/stats.js';
import type { CheckOutcome, OpenOutcome, WorkerCommand } from './idle-worker.js';
import { type Daemon, missingPeers, peerVersions, startEjabberd, startProsody } from './servers.js';

export type ServerKey = 'pmb' | 'prosody' | 'ejabberd';
const LABELS: Record<ServerKey, string> = { pmb: 'PMB', prosody: 'Prosody', ejabberd: 'ejabberd' };

export interface IdleOptions {
  counts: number[];
  /** Child processes opening the connections. */
  procs: number;
  servers?: ServerKey[];
  /** Wait at least this long after the last connection opened before reading RSS. */
  settleMs?: number;
  /** ... and at most this long for RSS to stop moving. */
  maxSettleMs?: number;
  /** Connections being opened at once per child. */
  parallel?: { pmb: number; xmpp: number };
  log?: (line: string) => void;
}

export interface IdleRun {
  server: ServerKey;
  connections: number;
  /** All N opened, still open after RSS was read, and each answered a ping. */
  held: boolean;
  opened: number;
  failed: number;
  /** The first few distinct errors (opening, pinging, or the server exiting). */
  errors: string[];
  /** Open after the RSS reading, and answering a ping. */
  stillOpen: number;
  answered: number;
  openS: number;
  /** PMB only: OpenPGP keys generated for this run (before the server starts; not in openS). */
  keygenS?: number;
  idleRssMb: number;
  rssMb: number;
  kbPerConnection: number;
  /** From the server listening to the idle RSS reading. */
  idleSettleS: number;
  /** From the last connection opened to the RSS reading. */
  settleS: number;
  /** RSS every second while settling, MB. */
  rssSamplesMb: number[];
  serverAlive: boolean;
}

export interface IdleResult {
  settings: Required<Omit<IdleOptions, 'log' | 'servers'>> & { servers: ServerKey[] };
  runs: IdleRun[];
}

const here = dirname(fileURLToPath(import.meta.url));

const treeRss = (pid: number) => treeReading(pid).rssMb;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const round1 = (x: number) => Math.round(x * 10) / 10;

/** The children that open the connections, each with its own source addresses. */
class Openers {
  #nextCommand = 1;
  #nextAddress = 0;
  readonly #pending = new Map<number, (v: Record<string, unknown>) => void>();
  private constructor(readonly children: Child<{ pid: number }>[]) {
    for (const c of children) {
      c.onEvent = (e) => {
        const done = this.#pending.get(e.id as number);
        if (!done) return;
        this.#pending.delete(e.id as number);
        done(e);
      };
    }
  }

  static async start(n: number): Promise<Openers> {
    const script = join(here, 'idle-worker.js');
    const children = await Promise.all(
      Array.from({ length: n }, () =>
        startChild<{ pid: number }>(script, { nodeArgs: ['--enable-source-maps'] }),
      ),
    );
    return new Openers(children);
  }

  /** A loopback source address not used before in this process: 127.0.0.2, ..., 127.0.0.251, 127.0.1.2, ... */
  address(): string {
    const k = this.#nextAddress++;
    return `127.0.${Math.floor(k / 250)}.${2 + (k % 250)}`;
  }

  /** Send one command to every child (`make(i)` builds child i's) and wait for all outcomes. */
  async all<T>(make: (i: number) => Omit<WorkerCommand, 'id'>): Promise<T[]> {
    return Promise.all(
      this.children.map(async (c, i) => {
        const id = this.#nextCommand++;
        const outcome = new Promise<Record<string, unknown>>((done) => this.#pending.set(id, done));
        await c.ask(JSON.stringify({ ...make(i), id }));
        const r = await outcome;
        if (typeof r.error === 'string') throw new Error(`opener ${c.pid}: ${r.error}`);
        return r as T;
      }),
    );
  }

  /** Child i's share of n, and the index of its first one. */
  share(n: number, i: number): { first: number; count: number } {
    const k = this.children.length;
    const base = Math.floor(n / k);
    const extra = n % k;
    return { first: i * base + Math.min(i, extra), count: base + (i < extra ? 1 : 0) };
  }

  async stop(): Promise<void> {
    await Promise.all(this.children.map((c) => c.stop()));
  }
}

interface Target {
  pid: number;
  alive(): boolean;
  stop(): Promise<void>;
  kind: 'pmb' | 'xmpp';
  url?: string;
  port?: number;
  logFile?: string;
}

async function startServer(key: ServerKey): Promise<Target> {
  if (key === 'pmb') {
    const c: Child<{ url: string }> = await startChild(join(here, '..', 'relay', 'pmb-server.js'));
    return {
      pid: c.pid,
      alive: () => c.proc.exitCode === null,
      stop: () => c.stop(),
      kind: 'pmb',
      url: c.info.url,
    };
  }
  const d: Daemon = key === 'prosody' ? await startProsody() : await startEjabberd();
  return {
    pid: d.pid,
    alive: () => d.proc.exitCode === null && d.proc.signalCode === null,
    stop: () => d.stop(),
    kind: 'xmpp',
    port: d.port,
    logFile: d.logFile,
  };
}

/** Sample RSS each second until it moved less than 1 % (and 1 MB) over 3 s, after at least settleMs. */
async function settledRss(pid: number, settleMs: number, maxSettleMs: number) {
  const t0 = performance.now();
  const samples: number[] = [];
  for (;;) {
    await sleep(1000);
    const rss = treeRss(pid);
    samples.push(rss);
    const elapsed = performance.now() - t0;
    const before = samples[samples.length - 4];
    const still = before !== undefined && Math.abs(rss - before) < Math.max(1, rss / 100);
    if ((elapsed >= settleMs && still) || elapsed >= maxSettleMs) {
      return { rssMb: rss, settleS: elapsed / 1000, samples: samples.map(round1) };
    }
  }
}

async function measureOne(
  key: ServerKey,
  n: number,
  openers: Openers,
  opts: Required<Omit<IdleOptions, 'servers'>>,
): Promise<IdleRun> {
  const log = opts.log;
  let keygenS: number | undefined;
  if (key === 'pmb') {
    const t0 = performance.now();
    await openers.all((i) => ({ op: 'gen', count: openers.share(n, i).count }));
    keygenS = (performance.now() - t0) / 1000;
    log(`  ${LABELS[key]} ${n}: ${n} OpenPGP keys ready in ${keygenS.toFixed(1)} s (not timed below)`);
  }
  const server = await startServer(key);
  const errors: string[] = [];
  try {
    // Servers go on allocating (and ejabberd freeing) for a while after they listen.
    const idle = await settledRss(server.pid, 3000, opts.maxSettleMs);
    const idleRssMb = idle.rssMb;
    const tag = Math.random().toString(36).slice(2, 8);
    const t0 = performance.now();
    const opened = await openers.all<OpenOutcome>((i) => ({
      op: 'open',
      kind: server.kind,
      ...(server.url ? { url: server.url } : {}),
      ...(server.port ? { port: server.port } : {}),
      ...openers.share(n, i),
      localAddress: openers.address(),
      parallel: key === 'pmb' ? opts.parallel.pmb : opts.parallel.xmpp,
      tag,
    }));
    const openS = (performance.now() - t0) / 1000;
    const ok = opened.reduce((s, o) => s + o.opened, 0);
    const failed = opened.reduce((s, o) => s + o.failed, 0);
    for (const o of opened) for (const e of o.errors) if (!errors.includes(e)) errors.push(e);
    log(
      `  ${LABELS[key]} ${n}: ${ok} opened, ${failed} failed in ${openS.toFixed(1)} s` +
        (errors.length ? `; errors: ${errors.slice(0, 3).join(' | ')}` : ''),
    );
    const settled = await settledRss(server.pid, opts.settleMs, opts.maxSettleMs);
    const checks = await openers.all<CheckOutcome>(() => ({ op: 'check', parallel: 50 }));
    const stillOpen = checks.reduce((s, c) => s + c.open, 0);
    const answered = checks.reduce((s, c) => s + c.answered, 0);
    for (const c of checks) for (const e of c.errors) if (!errors.includes(e)) errors.push(e);
    const serverAlive = server.alive();
    if (!serverAlive) errors.push('the server exited');
    const run: IdleRun = {
      server: key,
      connections: n,
      held: ok === n && stillOpen === n && answered === n && serverAlive,
      opened: ok,
      failed,
      errors: errors.slice(0, 8),
      stillOpen,
      answered,
      openS,
      ...(keygenS !== undefined ? { keygenS } : {}),
      idleRssMb,
      idleSettleS: idle.settleS,
      rssMb: settled.rssMb,
      kbPerConnection: ok > 0 ? ((settled.rssMb - idleRssMb) * 1024) / ok : Number.NaN,
      settleS: settled.settleS,
      rssSamplesMb: settled.samples,
      serverAlive,
    };
    log(
      `  ${LABELS[key]} ${n}: held ${run.held} (${stillOpen} open, ${answered} answered a ping); ` +
        `RSS ${round1(idleRssMb)} -> ${round1(run.rssMb)} MB after ${run.settleS.toFixed(0)} s, ` +
        `${run.kbPerConnection.toFixed(1)} KB/connection`,
    );
    return run;
  } finally {
    await openers.all(() => ({ op: 'close' }));
    if (!server.alive() && server.logFile) {
      try {
        log(`  ${LABELS[key]} log tail:\n${readFileSync(server.logFile, 'utf8').slice(-2000)}`);
      } catch {
        // No log.
      }
    }
    await server.stop();
  }
}

/** Every server in turn, every count in turn, a fresh server each time. */
export async function measureIdle(options: IdleOptions): Promise<IdleResult> {
  const opts = {
    counts: options.counts,
    procs: options.procs,
    settleMs: options.settleMs ?? 5000,
    maxSettleMs: options.maxSettleMs ?? 30_000,
    parallel: options.parallel ?? { pmb: 8, xmpp: 16 },
    log: options.log ?? (() => {}),
  };
  const servers = options.servers ?? ['pmb', 'prosody', 'ejabberd'];
  const openers = await Openers.start(opts.procs);
  const runs: IdleRun[] = [];
  try {
    for (const key of servers) {
      for (const n of opts.counts) runs.push(await measureOne(key, n, openers, opts));
    }
  } finally {
    await openers.stop();
  }
  const { log: _log, ...settings } = opts;
  return { settings: { ...settings, servers }, runs };
}

/** The open-files limit (soft, hard) of this process. */
function fileLimit(): { soft: number; hard: number } {
  const line = /^Max open files\s+(\S+)\s+(\S+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
  const num = (s: string | undefined) => (s === 'unlimited' ? Number.POSITIVE_INFINITY : Number(s));
  return { soft: num(line?.[1]), hard: num(line?.[2]) };
}

const WANTED_FILES = 65_536;

/**
 * Node cannot raise its own RLIMIT_NOFILE: when the soft limit is below 65536 and the hard one allows
 * more, run this script again under `ulimit -n` (the servers and the openers inherit it). Returns false
 * when it did (the caller exits with the re-run's status).
 */
function withRaisedFileLimit(): boolean {
  const { soft, hard } = fileLimit();
  const target = Math.min(hard, WANTED_FILES);
  if (soft >= target || process.env.PMB_IDLE_ULIMIT) return true;
  const r = spawnSync(
    'sh',
    [
      '-c',
      `ulimit -n ${target} && exec "$0" "$@"`,
      process.execPath,
      ...process.execArgv,
      ...process.argv.slice(1),
    ],
    { stdio: 'inherit', env: { ...process.env, PMB_IDLE_ULIMIT: String(target) } },
  );
  process.exitCode = r.status ?? 1;
  return false;
}

async function main(): Promise<void> {
  if (!withRaisedFileLimit()) return;
  const { values: flags } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      counts: { type: 'string' },
      procs: { type: 'string', default: '4' },
      servers: { type: 'string', default: 'pmb,prosody,ejabberd' },
    },
  });
  const quick = flags.quick === true;
  const counts = (flags.counts ?? (quick ? '200,1000' : '1000,10000')).split(',').map(Number);
  const servers = flags.servers!.split(',') as ServerKey[];
  const procs = Number(flags.procs);
  if (counts.some((c) => !(c > 0)) || !(procs > 0) || servers.some((s) => !(s in LABELS))) {
    console.error(
      'usage: bench:idle [-- --quick] [--counts 1000,10000] [--procs 4] [--servers pmb,prosody,ejabberd]',
    );
    process.exitCode = 2;
    return;
  }
  if (servers.some((s) => s !== 'pmb')) {
    const missing = missingPeers();
    if (missing) {
      console.error(`bench:idle needs Prosody and ejabberd installed (or --servers pmb).\n${missing}`);
      process.exitCode = 1;
      return;
    }
  }
  const host = machine();
  const versions = peerVersions();
  const files = fileLimit();
  const command = `npm run bench:idle${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`;
  const date = new Date().toISOString();
  console.log(`Idle RSS per authenticated connection  ${date}`);
  console.log(`machine: ${host.nproc} cpus, ${host.cpu}, node ${host.node}, linux ${host.kernel}`);
  console.log(
    `peers: prosody ${versions.prosody}, ejabberd ${versions.ejabberd} (Erlang/OTP ${versions.erlang})`,
  );
  console.log(`command: ${command}`);
  console.log(`open files limit: ${files.soft} (hard ${files.hard}); ${procs} opener processes`);
  if (files.soft < Math.max(...counts) + 1000) {
    console.warn(
      `! the open files limit (${files.soft}) is below the largest count: that server cannot hold it`,
    );
  }
  const loadAvg = { start: loadavg()[0] ?? 0, end: 0 };
  const t0 = performance.now();
  const result = await measureIdle({ counts, procs, servers, log: (l) => console.log(l) });
  loadAvg.end = loadavg()[0] ?? 0;
  const totalS = (performance.now() - t0) / 1000;

  const table = [['server', 'connections', 'held', 'open time s', 'idle RSS MB', 'RSS MB', 'KB/connection']];
  for (const r of result.runs) {
    table.push([
      LABELS[r.server],
      String(r.connections),
      r.held ? 'yes' : `no (${r.answered} answered)`,
      r.openS.toFixed(1),
      r.idleRssMb.toFixed(1),
      r.rssMb.toFixed(1),
      r.kbPerConnection.toFixed(1),
    ]);
  }
  console.log('');
  printTable(table);
  console.log(
    `\ntotal ${totalS.toFixed(0)} s; load average (1 min) ${loadAvg.start.toFixed(2)} -> ${loadAvg.end.toFixed(2)}`,
  );

  const variant = quick ? '-quick' : process.argv.length > 2 ? '-custom' : '';
  const resultsDir = join(here, '..', '..', '..', 'bench', 'results');
  mkdirSync(resultsDir, { recursive: true });
  const file = join(resultsDir, `idle-${date.slice(0, 10)}${variant}.json`);
  writeFileSync(
    file,
    toJson({ date, command, machine: host, versions, openFilesLimit: files, loadAvg, totalS, ...result }),
  );
  console.log(`wrote ${relative(process.cwd(), file)}`);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();
