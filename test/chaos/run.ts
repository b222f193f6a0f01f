/**
 * npm run chaos: the long form of test/chaos/kill.test.ts. Real `pmb serve` processes are killed with
 * SIGKILL under load many times (the one-server scenario, then the federated one, half the cycles each),
 * then a summary; the exit status is non-zero if an acknowledged message was lost, a message was shown
 * twice, read wrong or out of order, or something stayed unacknowledged after the final drain.
 *
 *   npm run chaos -- [--cycles N] [--minutes M] [--seed S] [--only single,federated]
 *
 * --cycles   kill cycles in all (default 100)
 * --minutes  time cap for the killing (default 10), shared by the scenarios; the drain comes after it
 * --seed     seed of the kill moments (default: a fresh one, printed)
 */

import { onlyOption, positive, seedOption } from '../helpers/run-args.js';
import { type KillScenarioResult, median, runKillScenario, summary } from './scenario.js';

async function main(): Promise<number> {
  const cycles = Math.round(positive('cycles', 100));
  const minutes = positive('minutes', 10);
  const seed = seedOption();
  const only = onlyOption();
  const scenarios = (
    [
      ['single', 1],
      ['federated', 2],
    ] as const
  ).filter(([name]) => !only || only.includes(name));
  if (scenarios.length === 0) throw new Error('--only names none of: single, federated');
  console.log(`chaos: ${cycles} kill cycles, at most ${minutes} min of killing, seed ${seed}`);

  const started = Date.now();
  const deadline = started + minutes * 60_000;
  const results: [string, KillScenarioResult][] = [];
  for (const [i, [name, servers]] of scenarios.entries()) {
    const left = scenarios.length - i;
    const share = Math.ceil((cycles - results.reduce((n, [, r]) => n + r.cycles, 0)) / left);
    const capMs = Math.max(1000, (deadline - Date.now()) / left);
    console.log(`\n${name}: ${share} cycles, at most ${Math.round(capMs / 1000)} s`);
    const r = await runKillScenario({
      servers,
      cycles: share,
      timeCapMs: capMs,
      seed: seed + i,
      log: (line) => console.log(`  ${line}`),
    });
    console.log(`${name}: ${summary(r)}`);
    for (const [what, list] of [
      ['LOST', r.lost],
      ['DUPLICATED', r.duplicated],
      ['PUSHED TWICE', r.pushedTwice],
      ['WRONG', r.wrong],
    ] as const) {
      for (const line of list.slice(0, 20)) console.log(`  ${what} ${line}`);
      if (list.length > 20) console.log(`  ... and ${list.length - 20} more ${what}`);
    }
    results.push([name, r]);
  }

  const all = results.map(([, r]) => r);
  const sum = (f: (r: KillScenarioResult) => number) => all.reduce((n, r) => n + f(r), 0);
  const restarts = all.flatMap((r) => r.restartMs);
  const lost = sum((r) => r.lost.length);
  const duplicated = sum((r) => r.duplicated.length + r.pushedTwice.length);
  const wrong = sum((r) => r.wrong.length);
  const unacked = sum((r) => r.sent - r.acked);
  console.log(
    `\nchaos: ${sum((r) => r.cycles)} cycles, ${sum((r) => r.acked)} messages acked, ` +
      `${sum((r) => r.received)}/${sum((r) => r.expected)} deliveries received, lost ${lost}, ` +
      `duplicated ${duplicated}, wrong ${wrong}, unacked after drain ${unacked}, ` +
      `pushed again ${sum((r) => r.redelivered)} unacked + ${sum((r) => r.pushedAfterAck)} after an answered ack, restart median ${median(restarts)} ms ` +
      `max ${Math.max(0, ...restarts)} ms, ${Math.round((Date.now() - started) / 1000)} s, seed ${seed}`,
  );
  const pushedAfterAck = sum((r) => r.pushedAfterAck);
  return lost + duplicated + wrong + unacked + pushedAfterAck > 0 ? 1 : 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(err instanceof Error ? err.stack : err);
    process.exitCode = 2;
  },
);
