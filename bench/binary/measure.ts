/**
 * `npm run bench:binary [-- --runs N]` (after `npm run build:binary`)
 *
 * The single-file executable (dist/pmb-linux-x64, Bun) beside `node bin/pmb` on the same machine: file
 * sizes, start-up of `pmb --version` and of `pmb serve` until it is ready, and idle memory of the server.
 * Both run from an empty directory with only PATH and HOME set. Figures are medians; nothing passes or fails.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { machine, median } from '../relay/stats.js';

const { values: flags } = parseArgs({ options: { runs: { type: 'string', default: '5' } } });
const runs = Number(flags.runs);
const root = fileURLToPath(new URL('../../../', import.meta.url));
const binary = join(root, 'dist', 'pmb-linux-x64');
if (!existsSync(binary)) throw new Error(`${binary} is missing: run \`npm run build:binary\` first`);

interface Subject {
  name: string;
  command: string[];
}
const subjects: Subject[] = [
  { name: 'binary (Bun)', command: [binary] },
  { name: 'node bin/pmb', command: [process.execPath, join(root, 'bin', 'pmb')] },
];

const work = mkdtempSync(join(tmpdir(), 'pmb-bench-binary-'));
const env = { PATH: '/usr/local/bin:/usr/bin:/bin', HOME: work };

function start(s: Subject, args: string[]): ChildProcess {
  return spawn(s.command[0]!, [...s.command.slice(1), ...args], {
    cwd: work,
    env,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
}

async function versionMs(s: Subject): Promise<number> {
  const began = performance.now();
  const child = start(s, ['--version']);
  child.stdout!.resume();
  const [code] = await once(child, 'close');
  if (code !== 0) throw new Error(`${s.name} --version exited ${code}`);
  return performance.now() - began;
}

interface ServeRun {
  /** From spawn to the JSON line on stdout. */
  lineMs: number;
  /** From spawn to the first 200 from GET /health. */
  healthMs: number;
  /** VmRSS two seconds after ready, MB. */
  idleRssMb: number;
}

async function serveRun(s: Subject, dataDir: string): Promise<ServeRun> {
  const began = performance.now();
  const child = start(s, ['serve', '--json', '--port', '0', '--data-dir', dataDir, '--log-level', 'warn']);
  try {
    const [line] = (await once(createInterface({ input: child.stdout! }), 'line')) as [string];
    const lineMs = performance.now() - began;
    const http = (JSON.parse(line) as { url: string }).url.replace(/^ws/, 'http');
    let healthMs = Number.NaN;
    for (let i = 0; i < 2000 && Number.isNaN(healthMs); i++) {
      const ok = await fetch(`${http}/health`).then(
        (r) => r.ok,
        () => false,
      );
      if (ok) healthMs = performance.now() - began;
    }
    await new Promise((r) => setTimeout(r, 2000));
    const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
    const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1]);
    return { lineMs, healthMs, idleRssMb: kb / 1024 };
  } finally {
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const [code] = await exited;
    if (code !== 0) console.error(`${s.name} serve exited ${code} on SIGTERM`);
  }
}

function gzipBytes(file: string): number {
  const r = spawnSync('sh', ['-c', 'gzip -9 -c "$1" | wc -c', 'sh', file], { encoding: 'utf8' });
  return Number(r.stdout.trim());
}

const mb = (bytes: number) => (bytes / 1e6).toFixed(1);

console.log(`# bench:binary, ${new Date().toISOString()}`);
console.log(JSON.stringify({ ...machine(), loadavg1: loadavg()[0], runs }));

const sizes = ['linux-x64', 'linux-arm64']
  .map((t) => join(root, 'dist', `pmb-${t}`))
  .filter((f) => existsSync(f))
  .map((f) => ({ file: relative(root, f), bytes: statSync(f).size, gzip9Bytes: gzipBytes(f) }));
console.log('\n| file | size MB | gzip -9 MB |\n| --- | ---: | ---: |');
for (const s of sizes) console.log(`| ${s.file} | ${mb(s.bytes)} | ${mb(s.gzip9Bytes)} |`);

const results = new Map<string, { version: number[]; first: ServeRun[]; restart: ServeRun[] }>();
for (const s of subjects) {
  results.set(s.name, { version: [], first: [], restart: [] });
  await versionMs(s); // warm the page cache: every figure below is of a cached file
}
for (let i = 0; i < runs; i++) {
  // Alternate who goes first, so drift on a shared machine does not favour one.
  const order = i % 2 === 0 ? subjects : [...subjects].reverse();
  for (const s of order) {
    const r = results.get(s.name)!;
    r.version.push(await versionMs(s));
    const dataDir = join(work, `data-${s.name.replace(/\W+/g, '-')}-${i}`);
    r.first.push(await serveRun(s, dataDir)); // a new data dir: creates the database and server key
    r.restart.push(await serveRun(s, dataDir)); // the same data dir again: an ordinary restart
  }
}

const fmt = (n: number) => n.toFixed(0);
const summary = [...results].map(([name, r]) => ({
  name,
  versionMs: median(r.version),
  firstLineMs: median(r.first.map((x) => x.lineMs)),
  firstHealthMs: median(r.first.map((x) => x.healthMs)),
  restartLineMs: median(r.restart.map((x) => x.lineMs)),
  restartHealthMs: median(r.restart.map((x) => x.healthMs)),
  idleRssMb: median(r.restart.map((x) => x.idleRssMb)),
}));
console.log(
  `\nMedians of ${runs} runs.\n\n| program | --version ms | serve ready ms, new data dir (JSON line / /health) | serve ready ms, restart (JSON line / /health) | idle RSS MB |\n| --- | ---: | ---: | ---: | ---: |`,
);
for (const s of summary) {
  console.log(
    `| ${s.name} | ${fmt(s.versionMs)} | ${fmt(s.firstLineMs)} / ${fmt(s.firstHealthMs)} | ${fmt(s.restartLineMs)} / ${fmt(s.restartHealthMs)} | ${s.idleRssMb.toFixed(1)} |`,
  );
}

rmSync(work, { recursive: true, force: true });
const outDir = join(root, 'bench', 'results');
mkdirSync(outDir, { recursive: true });
const out = join(outDir, `binary-${new Date().toISOString().slice(0, 10)}.json`);
writeFileSync(
  out,
  `${JSON.stringify(
    {
      date: new Date().toISOString(),
      machine: machine(),
      runs,
      sizes,
      summary,
      raw: Object.fromEntries(results),
    },
    (_, v) => (typeof v === 'number' && !Number.isInteger(v) ? Math.round(v * 10) / 10 : v),
    2,
  )}\n`,
);
console.log(`\n${relative(root, out)} (\`npx biome format --write\` it before committing)`);
