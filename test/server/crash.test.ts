import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Envelope } from '../../src/protocol/frames.js';
import { startChildServer } from '../helpers/child.js';
import { connectUser, inbox, tempDir } from '../helpers/servers.js';

describe('crash safety', () => {
  it('kill -9 right after acks: every acknowledged message is delivered exactly once after restart', async () => {
    await using dir = await tempDir();
    let server = await startChildServer(dir.path);
    try {
      const alice = await connectUser(server, 'alice');
      const bob = await connectUser(server, 'bob');
      bob.close(); // bob is offline: everything must wait on disk
      const key = (await alice.lookup('bob@a.test')).key;
      const N = 200;
      const envs: Envelope[] = [];
      for (let i = 0; i < N; i++) envs.push(await alice.seal([key], `m${i}`));
      const acked = new Set<string>();
      // Pipeline all sends; kill the server the moment the N/2-th ack arrives, with the rest in flight.
      const killed = new Promise<void>((resolve) => {
        for (const e of envs) {
          alice.sendEnvelope(e).then(
            () => {
              acked.add(e.id);
              if (acked.size === N / 2) resolve();
            },
            () => {},
          );
        }
      });
      await killed;
      await server.kill('SIGKILL');
      const ackedAtKill = new Set(acked);
      assert.ok(ackedAtKill.size >= N / 2);

      server = await startChildServer(dir.path);
      const bobAgain = await connectUser(server, 'bob', { identity: bob.identity, register: false });
      const box = inbox(bobAgain);
      await bobAgain.waitSynced();
      const ids = box.messages.map((m) => m.id);
      assert.equal(new Set(ids).size, ids.length, 'no message is shown twice');
      for (const id of ackedAtKill) assert.ok(ids.includes(id), `acknowledged message ${id} was lost`);
      // Order is kept for what survived.
      const order = box.messages.map((m) => Number(m.text?.slice(1)));
      assert.deepEqual(
        order,
        [...order].sort((a, b) => a - b),
      );
      await bobAgain.flushAcks();
      bobAgain.close();
      alice.close();
    } finally {
      await server.kill('SIGKILL');
    }
  });
});
