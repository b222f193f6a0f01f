import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Envelope } from '../../src/protocol/frames.js';
import type { PmbServer } from '../../src/server/index.js';
import { startNetwork } from '../helpers/network.js';
import { connectUser, inbox } from '../helpers/servers.js';
import { until } from '../helpers/wait.js';

describe('a large federated backlog', () => {
  it('a backlog of 120 messages of 3 KB queued during a partition arrives after it heals (a batch fits a frame)', async () => {
    await using net = await startNetwork(2, { links: { backoff: { initialMs: 50, maxMs: 400 } } });
    const [s1, s2] = net.servers as [PmbServer, PmbServer];
    const alice = await connectUser(s1, 'alice');
    const bob = await connectUser(s2, 'bob');
    const key = (await alice.lookup('bob@s2.test')).key;
    const box = inbox(bob);
    net.partition(0, 1);
    await until(() => !s1.context.links.get('s2.test')?.open, 5000, 'the link to drop');
    const envelopes: Envelope[] = [];
    for (let i = 0; i < 120; i++) envelopes.push(await alice.seal([key], `m${i} ${'x'.repeat(3000)}`));
    await Promise.all(envelopes.map((e) => alice.sendEnvelope(e)));
    net.heal(0, 1);
    try {
      await box.waitFor(120, 20_000);
      assert.deepEqual(
        box.messages.map((m) => m.id),
        envelopes.map((e) => e.id),
      );
    } finally {
      alice.close();
      bob.close();
    }
  });
});
