/**
 * Child process: one PMB server in a temp data dir, registration open, logs off, port 0.
 * Talks to its parent by lines: prints {"url"} once listening, answers "stats" with its group-commit
 * count, and closes (removing the data dir) when stdin ends, so it never outlives the bench.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { DEFAULT_LIMITS } from '../../src/protocol/limits.js';
import { createServer, serverConfig } from '../../src/server/index.js';

/**
 * The bench drives one connection at thousands of frames/s and opens 200+ connections from 127.0.0.1,
 * so the per-connection frame rate and per-address connection limits are lifted. Everything else
 * (group commit, synchronous=FULL, delivery window) is the shipped default.
 */
const BENCH_LIMITS = { framesPerSecond: 1_000_000, connectionsPerAddress: 10_000 };

const dir = await mkdtemp(join(process.env.PMB_BENCH_DIR ?? tmpdir(), 'pmb-bench-'));
const server = createServer(
  serverConfig({
    dataDir: dir,
    domain: 'bench.test',
    registration: 'open',
    logLevel: 'silent',
    limits: { ...DEFAULT_LIMITS, ...BENCH_LIMITS },
  }),
);
await server.start();
const say = (v: unknown) => process.stdout.write(`${JSON.stringify(v)}\n`);
say({ url: server.url, dir, limits: BENCH_LIMITS });

const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  if (line.trim() === 'stats') say({ commits: server.context.store.writes.commits });
});
lines.on('close', async () => {
  await server.close();
  await rm(dir, { recursive: true, force: true });
});
