/**
 * Child process: one PMB server for the Romeo and Juliet benchmark, in a temp data dir, registration
 * open, logs off, every limit at the shipped default.
 * `node server.js DOMAIN [--port N] [--peer DOMAIN]... [--resolve DOMAIN=HOST:PORT]...`: port 0 by default;
 * with `--servers 2` each house's server names the other as a peer (`config.peers`, what `pmb serve --peer`
 * sets) and in its resolve map (`--resolve`), on a port chosen by the parent.
 * Same line protocol as bench/relay/pmb-server.ts: prints {"url"} once listening, answers "stats" with
 * its group-commit count and "links" with its open server links, and closes (removing the data dir) when
 * stdin ends, so it never outlives the bench.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { createServer, serverConfig } from '../../src/server/index.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    port: { type: 'string', default: '0' },
    peer: { type: 'string', multiple: true, default: [] },
    resolve: { type: 'string', multiple: true, default: [] },
  },
});
const domain = positionals[0] ?? 'verona.test';
const resolve = Object.fromEntries(
  values.resolve.map((entry) => {
    const at = entry.indexOf('=');
    return [entry.slice(0, at), entry.slice(at + 1)];
  }),
);
const dir = await mkdtemp(join(process.env.PMB_BENCH_DIR ?? tmpdir(), 'pmb-romeo-'));
const server = createServer(
  serverConfig({
    dataDir: dir,
    domain,
    port: Number(values.port),
    registration: 'open',
    logLevel: 'silent',
    resolve,
    peers: values.peer,
  }),
);
await server.start();
const say = (v: unknown) => process.stdout.write(`${JSON.stringify(v)}\n`);
say({ url: server.url, domain, dir });

const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  const command = line.trim();
  if (command === 'stats') say({ commits: server.context.store.writes.commits });
  else if (command === 'links')
    say({ links: server.context.links.domains, outbox: server.context.store.outbox.count() });
  else say({ error: `unknown command ${command}` });
});
lines.on('close', async () => {
  await server.close();
  await rm(dir, { recursive: true, force: true });
});
