/**
 * Child process: one federated PMB server for bench:federation, in a temp data dir, registration open,
 * logs off. `node server.js '<options as JSON>'` (ServerOptions below): its domain, a port chosen by the
 * parent (the others' resolve maps name it before it starts), the peers it keeps links to from the start
 * (`config.peers`, what `pmb serve --peer DOMAIN` sets) and its resolve map (`--resolve domain=host:port`).
 *
 * Same line protocol as bench/relay/pmb-server.ts (prints {"url"} once listening, answers "stats", closes
 * and removes its data dir when stdin ends), plus:
 * - `clock`: {"now"}, this process's clock (performance.timeOrigin + now), to check it against the parent's;
 * - `state FP`: {"links", "pinned", "known", "location", "outbox"}: open links, how many of the federation's
 *   domains it has a pinned key for, whether it holds FP's key, where it thinks FP lives, outbox rows;
 * - an event line {"event": "location", "subject", "domain", "seq", "t"} each time a location record
 *   changes where this server thinks an identity lives, timed just after the record's COMMIT (the bench
 *   hook below), so the parent learns when every server's view changed without polling any of them.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { DEFAULT_LIMITS } from '../../src/protocol/limits.js';
import { createServer, serverConfig } from '../../src/server/index.js';

export interface ServerOptions {
  domain: string;
  port: number;
  peers: string[];
  resolve: Record<string, string>;
  /** Every domain of the federation, for the `pinned` count of `state`. */
  domains: string[];
  /** Lift the per-connection frame rate and per-address connection limits, as bench:relay does. */
  liftLimits: boolean;
}

const BENCH_LIMITS = { framesPerSecond: 1_000_000, connectionsPerAddress: 10_000 };

const opts = JSON.parse(process.argv[2] ?? '{}') as ServerOptions;
const dir = await mkdtemp(join(process.env.PMB_BENCH_DIR ?? tmpdir(), 'pmb-fed-'));
const server = createServer(
  serverConfig({
    dataDir: dir,
    domain: opts.domain,
    port: opts.port,
    registration: 'open',
    logLevel: 'silent',
    resolve: opts.resolve,
    peers: opts.peers,
    limits: opts.liftLimits ? { ...DEFAULT_LIMITS, ...BENCH_LIMITS } : DEFAULT_LIMITS,
  }),
);
const clock = () => performance.timeOrigin + performance.now();
const say = (v: unknown) => process.stdout.write(`${JSON.stringify(v)}\n`);

await server.start();

// Bench-only hook: wrap appendRecord. It runs inside the group-commit transaction, which libsql commits
// synchronously before the batch's callback returns, so a microtask queued here runs after the COMMIT.
const ids = server.context.store.identities;
const appendRecord = ids.appendRecord.bind(ids);
const seen = new Map<string, string | undefined>();
ids.appendRecord = (r) => {
  appendRecord(r);
  if (r.kind !== 'location') return;
  queueMicrotask(() => {
    const domain = ids.location(r.subject);
    if (seen.get(r.subject) === domain) return;
    seen.set(r.subject, domain);
    say({ event: 'location', subject: r.subject, domain, seq: ids.head(r.subject)?.seq, t: clock() });
  });
};

say({ url: server.url, domain: opts.domain, dir, fingerprint: server.context.identity.fingerprint });

const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  const [command, arg] = line.trim().split(/\s+/);
  const { store, links } = server.context;
  if (command === 'stats') say({ commits: store.writes.commits });
  else if (command === 'clock') say({ now: clock() });
  else if (command === 'state') {
    say({
      links: links.domains.sort(),
      pinned: opts.domains.filter((d) => store.identities.domainKey(d) !== undefined).length,
      known: arg ? store.identities.publicKey(arg) !== undefined : false,
      location: arg ? (store.identities.location(arg) ?? null) : null,
      outbox: store.outbox.count(),
    });
  } else say({ error: `unknown command ${command}` });
});
let closing: Promise<void> | undefined;
const shutdown = () => {
  closing ??= (async () => {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  })();
  return closing;
};
lines.on('close', () => void shutdown());
// Ctrl-C reaches every child of the terminal's process group: remove the data dir on the way out too.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => void shutdown().finally(() => process.exit(130)));
}
