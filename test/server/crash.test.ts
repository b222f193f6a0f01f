import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PmbClient } from '../../src/client/index.js';
import type { Envelope } from '../../src/protocol/frames.js';
import { startChildServer } from '../helpers/child.js';
import { connectUser, inbox, NodeWebSocket, tempDir } from '../helpers/servers.js';

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

  it('kill -9 right after an ack was answered: what it covered is not pushed to the device again', async () => {
    await using dir = await tempDir();
    let server = await startChildServer(dir.path);
    try {
      const alice = await connectUser(server, 'alice');
      const bob = await connectUser(server, 'bob');
      const box = inbox(bob);
      await alice.send('bob@a.test', 'read once');
      await box.waitFor(1);
      // The answer to bob's ack is in; nothing else is written after it, so no later batch can carry the
      // cursor to disk before the kill.
      await bob.flushAcks();
      await server.kill('SIGKILL');

      server = await startChildServer(dir.path);
      // A new app instance on the same device, which remembers nothing: only the server's cursor says what
      // this device has received.
      const again = await PmbClient.connect({
        url: server.url,
        WebSocket: NodeWebSocket,
        identity: bob.identity,
        device: 'dev1',
      });
      // What the server pushes, as it pushes it (the SDK's own handling is not needed here).
      const pushed: number[] = [];
      again.conn.events.deliver = (f) => pushed.push(f.seq);
      const synced = new Promise<void>((resolve) => {
        again.conn.events.synced = () => resolve();
      });
      await again.login();
      await synced;
      assert.deepEqual(pushed, [], 'an answered ack is on disk: nothing it covered comes again');
      again.close();
      alice.close();
      bob.close();
    } finally {
      await server.kill('SIGKILL');
    }
  });
});
