import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { PmbClient } from '../../src/client/index.js';
import { PmbError } from '../../src/protocol/errors.js';
import { DEFAULT_LIMITS } from '../../src/protocol/limits.js';
import type { PmbServer } from '../../src/server/index.js';
import { startNetwork, type TestNetwork } from '../helpers/network.js';
import { connectUser, inbox } from '../helpers/servers.js';
import { until } from '../helpers/wait.js';

const fast = { links: { backoff: { initialMs: 50, maxMs: 400 } } };
const LIMIT = 5;

describe('security: a dead server cannot make this one fill its disk', () => {
  let net: TestNetwork;
  let alice: PmbClient;
  let carol: PmbClient;
  let bob: PmbClient;
  before(async () => {
    net = await startNetwork(2, {
      ...fast,
      config: { limits: { ...DEFAULT_LIMITS, outboxPerServer: LIMIT } },
    });
    const [s1, s2] = net.servers as [PmbServer, PmbServer];
    alice = await connectUser(s1, 'alice');
    carol = await connectUser(s1, 'carol');
    bob = await connectUser(s2, 'bob');
  });
  after(async () => {
    for (const c of [alice, carol, bob]) c?.close();
    await net.close();
  });

  it('outbox flood: past outboxPerServer messages waiting for a dead server, mail for it is refused with unreachable, other mail flows, and it is taken again once the server is back', async () => {
    const [s1] = net.servers as [PmbServer];
    await alice.lookup('bob@s2.test');
    bob.close();
    await net.stop(1);
    const bobKey = (await alice.lookup('bob@s2.test')).key;
    const sent: string[] = [];
    for (let i = 0; i < LIMIT - 1; i++) {
      sent.push(`queued ${i}`);
      await alice.send('bob@s2.test', `queued ${i}`);
    }
    const held = await alice.seal([bobKey], 'held before the limit', { id: 'e'.repeat(32) });
    assert.equal((await alice.sendEnvelope(held)).duplicate, false);
    sent.push('held before the limit');
    assert.equal(s1.context.mail.outbox.pending('s2.test'), LIMIT);
    // One more for s2 is refused, and nothing of it is stored.
    const refused = await alice.seal([bobKey], 'one too many');
    await assert.rejects(alice.sendEnvelope(refused), (e: unknown) => {
      assert.ok(e instanceof PmbError && e.code === 'unreachable', String(e));
      return true;
    });
    assert.equal(s1.context.mail.outbox.pending('s2.test'), LIMIT, 'the refused envelope was not queued');
    assert.equal(s1.context.store.mailbox.has(alice.identity.fingerprint, refused.id), false);
    // A retry of an envelope already held (its send.ok was lost, say) is answered as before, not refused.
    assert.equal((await alice.sendEnvelope(held)).duplicate, true);
    // Mail to someone on this server is not affected.
    const carolBox = inbox(carol);
    await alice.send('carol@s1.test', 'local mail still flows');
    await carolBox.waitFor(1);

    const s2 = await net.restart(1);
    await until(() => s1.context.mail.outbox.pending('s2.test') === 0, 20_000, 'the outbox to drain');
    // Taken again once s2 has drained the outbox.
    assert.equal((await alice.sendEnvelope(refused)).duplicate, false);
    sent.push('one too many');
    bob = await connectUser(s2, 'bob', { identity: bob.identity, register: false });
    const box = inbox(bob);
    await box.waitFor(sent.length, 20_000);
    assert.deepEqual(
      box.messages.map((m) => m.text),
      sent,
      'every accepted message once, in order; the refused one only after it was sent again',
    );
  });
});
