import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type KillScenarioResult, runKillScenario, summary } from './scenario.js';

function check(r: KillScenarioResult): void {
  assert.deepEqual(r.lost, [], 'no acknowledged message is lost');
  assert.deepEqual(r.duplicated, [], 'no message is stored twice');
  assert.deepEqual(r.pushedTwice, [], 'no mailbox position is pushed twice on one connection');
  assert.deepEqual(r.wrong, [], 'every message reads as sent, in order per sender');
  assert.equal(
    r.pushedAfterAck,
    0,
    'nothing is pushed again once its ack was answered (the cursor is on disk)',
  );
  assert.equal(r.acked, r.sent, 'every message is acknowledged once resent after the restarts');
  assert.equal(r.received, r.expected);
}

describe('kill -9 under load (real pmb serve processes)', () => {
  it('one server killed 3 times while three users write to each other', async () => {
    const r = await runKillScenario({ servers: 1, cycles: 3, timeCapMs: 80_000 });
    console.log(`one server: ${summary(r)}`);
    assert.equal(r.cycles, 3);
    check(r);
  });

  it('two federated servers killed alternately 3 times while alice (s1) and bob (s2) write to each other', async () => {
    const r = await runKillScenario({ servers: 2, cycles: 3, timeCapMs: 80_000 });
    console.log(`federated: ${summary(r)}`);
    assert.equal(r.cycles, 3);
    check(r);
  });
});
