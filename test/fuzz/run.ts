/**
 * npm run fuzz: every property of test/fuzz with many more cases than `npm test` runs, from a fresh seed,
 * under a time cap, then a summary (properties, cases run, failures with their seed and path for replay).
 *
 *   npm run fuzz -- [--scale N] [--minutes M] [--seed S] [--only frames,codec,delivery,link]
 *
 * --scale    cases per property, as a multiple of the npm test numbers (default 20)
 * --minutes  time cap for the whole run (default 10); properties stop starting cases when it is reached
 * --seed     the run's seed (default: a fresh one, printed); each property derives its own from it
 * --only     run only these files of test/fuzz
 *
 * A failure prints a PMB_FUZZ_REPLAY value: set it (and build) to replay that one counterexample, e.g.
 *   PMB_FUZZ_REPLAY='<as printed>' node --test dist/test/fuzz/<file>.test.js
 */
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdtemp, readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { onlyOption, positive, seedOption } from '../helpers/run-args.js';
import type { FuzzReport } from './fuzz.js';

async function main(): Promise<number> {
  const scale = Math.round(positive('scale', 20));
  const minutes = positive('minutes', 10);
  const seed = seedOption();
  const only = onlyOption();

  const here = fileURLToPath(new URL('.', import.meta.url));
  const files = (await readdir(here))
    .filter((f) => f.endsWith('.test.js'))
    .filter((f) => !only || only.includes(f.replace(/\.test\.js$/, '')))
    .map((f) => join(here, f));
  if (files.length === 0) throw new Error(`no fuzz test files${only ? ` named ${only.join(', ')}` : ''}`);

  const dir = await mkdtemp(join(tmpdir(), 'pmb-fuzz-'));
  const reportFile = join(dir, 'report.jsonl');
  const logFile = join(dir, 'test-output.txt');
  const capMs = minutes * 60_000;
  const deadline = Date.now() + capMs;
  console.log(
    `fuzz: ${files.length} file(s), ${scale}x the npm test cases, seed ${seed}, at most ${minutes} min` +
      `\n      (PMB_FUZZ_SEED=${seed}: the same cases again; output in ${logFile})`,
  );

  const log = createWriteStream(logFile);
  const child = spawn(
    process.execPath,
    ['--enable-source-maps', '--test', '--test-concurrency=2', `--test-timeout=${capMs + 120_000}`, ...files],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...process.env,
        PMB_FUZZ_SCALE: String(scale),
        PMB_FUZZ_SEED: String(seed),
        PMB_FUZZ_DEADLINE: String(deadline),
        // Two files run at a time and the delivery file holds two properties: half the cap each.
        PMB_FUZZ_TIME_MS: String(Math.floor(capMs / 2)),
        PMB_FUZZ_REPORT: reportFile,
      },
    },
  );
  child.stdout.pipe(log, { end: false });
  child.stderr.pipe(log, { end: false });
  // Cases stop starting at the deadline; one still running gets two minutes more.
  const killer = setTimeout(() => child.kill('SIGTERM'), capMs + 120_000);
  const started = Date.now();
  const ticker = setInterval(() => {
    process.stdout.write(`  ... ${Math.round((Date.now() - started) / 1000)} s\n`);
  }, 60_000);
  const code = await new Promise<number>((resolve) => child.on('close', (c) => resolve(c ?? 1)));
  clearTimeout(killer);
  clearInterval(ticker);
  await new Promise<void>((resolve) => log.end(() => resolve()));

  const reports: FuzzReport[] = (await readFile(reportFile, 'utf8').catch(() => ''))
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as FuzzReport);
  const width = Math.max(8, ...reports.map((r) => r.property.length));
  console.log(`\n${'property'.padEnd(width)}  ${'cases'.padStart(7)}  ${'seconds'.padStart(7)}  result`);
  for (const r of reports) {
    const result = r.failed ? 'FAILED' : r.interrupted ? 'ok (time cap)' : 'ok';
    console.log(
      `${r.property.padEnd(width)}  ${String(r.runs).padStart(7)}  ${(r.ms / 1000).toFixed(1).padStart(7)}  ${result}`,
    );
  }
  const failures = reports.filter((r) => r.failed);
  for (const r of failures) {
    console.log(`\nFAILED ${r.property} (seed ${r.seed}, path ${r.path})`);
    console.log(`  ${(r.error ?? '').split('\n').slice(0, 12).join('\n  ')}`);
    console.log(
      `  replay: PMB_FUZZ_REPLAY='${r.replay}' node --test ${files.find((f) => f.endsWith(`${r.property.split(':')[0]}.test.js`)) ?? 'dist/test/fuzz/<file>.test.js'}`,
    );
  }
  const cases = reports.reduce((n, r) => n + r.runs, 0);
  console.log(
    `\n${reports.length} properties, ${cases} cases, ${failures.length} failure(s) in ${Math.round((Date.now() - started) / 1000)} s` +
      (code !== 0 && failures.length === 0
        ? `; the test run itself failed (exit ${code}): see ${logFile}`
        : ''),
  );
  return failures.length > 0 || code !== 0 ? 1 : 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exitCode = 2;
  },
);
