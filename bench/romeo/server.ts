/**
 * Child process: one PMB server for the Romeo and Juliet benchmark, in a temp data dir, registration
 * open, logs off, port 0, every limit at the shipped default. `node server.js DOMAIN`.
 * Same line protocol as bench/relay/pmb-server.ts: prints {"url"} once listening, answers "stats" with
 * its group-commit count, and closes (removing the data dir) when stdin ends, so it never outlives the bench.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { createServer, serverConfig } from '../../src/server/index.js';

const domain = process.argv[2] ?? 'verona.test';
const dir = await mkdtemp(join(process.env.PMB_BENCH_DIR ?? tmpdir(), 'pmb-romeo-'));
const server = createServer(serverConfig({ dataDir: dir, domain, registration: 'open', logLevel: 'silent' }));
await server.start();
const say = (v: unknown) => process.stdout.write(`${JSON.stringify(v)}\n`);
say({ url: server.url, domain, dir });

const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  if (line.trim() === 'stats') say({ commits: server.context.store.writes.commits });
});
lines.on('close', async () => {
  await server.close();
  await rm(dir, { recursive: true, force: true });
});
