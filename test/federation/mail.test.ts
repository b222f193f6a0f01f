import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { PmbClient } from '../../src/client/index.js';
import type { PmbServer } from '../../src/server/index.js';
import { startNetwork, type TestNetwork } from '../helpers/network.js';
import { rawLink } from '../helpers/raw-link.js';
import { connectUser, inbox, newIdentity } from '../helpers/servers.js';
import { until } from '../helpers/wait.js';

const fast = { links: { backoff: { initialMs: 50, maxMs: 400 } } };

describe('cross-server delivery: alice@s1.test writes to bob@s2.test', () => {
  let net: TestNetwork;
  let alice: PmbClient;
  let bob: PmbClient;
  before(async () => {
    net = await startNetwork(3, fast);
    const [s1, s2] = net.servers as [PmbServer, PmbServer];
    alice = await connectUser(s1, 'alice');
    bob = await connectUser(s2, 'bob');
  });
  after(async () => {
    alice?.close();
    bob?.close();
    await net.close();
  });

  it('alice looks up bob@s2.test on her own server, which links to s2 on demand and believes the binding', async () => {
    const contact = await alice.lookup('bob@s2.test');
    assert.equal(contact.fingerprint, bob.identity.fingerprint);
    assert.deepEqual(contact.addresses, ['bob@s2.test']);
    assert.equal(contact.server, 's2.test');
    assert.equal(contact.endpoint, (net.servers[1] as PmbServer).url);
  });

  it('a message crosses the link, is decrypted by bob, and bob answers across it', async () => {
    const bobBox = inbox(bob);
    const aliceBox = inbox(alice);
    const sent = await alice.send('bob@s2.test', 'hello from s1');
    assert.equal(sent.duplicate, false);
    await bobBox.waitFor(1);
    assert.equal(bobBox.messages[0]?.text, 'hello from s1');
    assert.equal(bobBox.messages[0]?.from, alice.identity.fingerprint);
    await bob.send(alice.identity.fingerprint, 'hello back from s2');
    await aliceBox.waitFor(1);
    assert.equal(aliceBox.messages[0]?.text, 'hello back from s2');
    const [s1] = net.servers as [PmbServer];
    await until(() => s1.context.mail.outbox.pending() === 0, 5000, 'the outbox to empty');
  });

  it('with s2 down messages queue in the durable outbox and arrive once, in order, when s2 is back', async () => {
    const [s1] = net.servers as [PmbServer];
    await bob.flushAcks();
    bob.close();
    await net.stop(1);
    const texts = Array.from({ length: 30 }, (_, i) => `queued ${i}`);
    for (const t of texts) await alice.send('bob@s2.test', t);
    assert.equal(s1.context.mail.outbox.pending('s2.test'), 30, 'all 30 acknowledged and queued');
    // A retry of an acknowledged message is recognised by id and not queued again.
    const env = await alice.seal([(await alice.lookup('bob@s2.test')).key], 'retried', {
      id: 'f'.repeat(32),
    });
    await alice.sendEnvelope(env);
    assert.equal((await alice.sendEnvelope(env)).duplicate, true);
    assert.equal(s1.context.mail.outbox.pending('s2.test'), 31);
    const s2 = await net.restart(1);
    bob = await connectUser(s2, 'bob', { identity: bob.identity, register: false });
    const box = inbox(bob);
    await box.waitFor(31, 20_000);
    await until(() => s1.context.mail.outbox.pending() === 0, 10_000, 'the outbox to empty');
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(
      box.messages.map((m) => m.text),
      [...texts, 'retried'],
      'every queued message exactly once, in the order sent',
    );
  });

  it('a server that is home to neither sender nor recipient cannot inject mail (forbidden)', async () => {
    const [, live, s3] = net.servers as [PmbServer, PmbServer, PmbServer];
    // s3 is a real, pinned server, but alice lives on s1: mail "from alice" coming from s3 is refused.
    const raw = await rawLink(live, { identity: s3.context.identity, record: s3.context.serverRecord });
    const env = await alice.seal([(await alice.lookup('bob@s2.test')).key], 'forged route');
    const res = await raw.request('s2s.deliver', {
      items: [{ envelope: env, to: [bob.identity.fingerprint] }],
    });
    assert.equal(res.type, 's2s.deliver.ok', JSON.stringify(res));
    assert.deepEqual(res.results, [{ status: 'refused', code: 'forbidden' }]);
    // Targets must be recipients of the envelope (or its sender).
    const stranger = await newIdentity();
    const res2 = await raw.request('s2s.deliver', {
      items: [{ envelope: env, to: [stranger.fingerprint] }],
    });
    assert.equal((res2.results as { status: string }[])[0]?.status, 'refused');
    raw.peer.close();
  });
});
