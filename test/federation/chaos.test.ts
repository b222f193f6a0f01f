import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { PmbClient } from '../../src/client/index.js';
import type { Envelope } from '../../src/protocol/frames.js';
import type { PmbServer } from '../../src/server/index.js';
import { type ProcessNetwork, startNetwork, type TestNetwork } from '../helpers/network.js';
import { connectUser, inbox } from '../helpers/servers.js';
import { until } from '../helpers/wait.js';

/** Every deliver frame a client gets, before the SDK drops redeliveries: what the server really sent. */
function rawDeliveries(client: PmbClient): string[] {
  const ids: string[] = [];
  const handle = client.conn.events.deliver;
  client.conn.events.deliver = (f) => {
    ids.push(f.envelope.id);
    handle?.(f);
  };
  return ids;
}

/**
 * Sends `n` sealed messages with up to `window` in flight; stops quietly when the connection dies.
 * Returns the ids acknowledged (durable at the sender's server), in send order.
 */
async function pump(
  alice: PmbClient,
  envelopes: Envelope[],
  window: number,
  acked: string[] = [],
): Promise<string[]> {
  let next = 0;
  let dead = false;
  const worker = async () => {
    while (!dead && next < envelopes.length) {
      const env = envelopes[next++] as Envelope;
      try {
        await alice.sendEnvelope(env);
        acked.push(env.id);
      } catch {
        dead = true;
      }
    }
  };
  await Promise.all(Array.from({ length: window }, worker));
  return acked;
}

describe('partition and heal', () => {
  let net: TestNetwork;
  before(async () => {
    net = await startNetwork(2, { links: { backoff: { initialMs: 50, maxMs: 400 } } });
  });
  after(async () => {
    await net.close();
  });

  it('mail and records sent during a partition arrive once, in order, after it heals', async () => {
    const [s1, s2] = net.servers as [PmbServer, PmbServer];
    const alice = await connectUser(s1, 'alice');
    const bob = await connectUser(s2, 'bob');
    await alice.lookup('bob@s2.test'); // links s1 and s2, both learn each other's users
    const box = inbox(bob);
    await alice.send('bob@s2.test', 'before');
    await box.waitFor(1);

    net.partition(0, 1);
    await until(() => !s1.context.links.get('s2.test')?.open, 5000, 'the link to drop');
    const texts = Array.from({ length: 20 }, (_, i) => `during ${i}`);
    for (const t of texts) await alice.send('bob@s2.test', t);
    await alice.publish('profile', { name: 'Alice' }); // a record while cut off
    assert.equal(s1.context.mail.outbox.pending('s2.test'), 20);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(box.messages.length, 1, 'nothing crosses a partition');

    net.heal(0, 1);
    await box.waitFor(21, 15_000);
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(
      box.messages.map((m) => m.text),
      ['before', ...texts],
    );
    await until(
      () => s2.context.store.identities.head(alice.identity.fingerprint)?.seq === 2,
      10_000,
      'the profile record to reach s2',
    );
    alice.close();
    bob.close();
  });
});

describe('a server killed with SIGKILL mid-stream (real pmb serve processes)', () => {
  let net: ProcessNetwork;
  before(async () => {
    net = await startNetwork(2, { mode: 'process' });
  });
  after(async () => {
    await net.close();
  });

  it("the sender's server dies mid-stream: every acknowledged message reaches bob exactly once, in order", async () => {
    const [n1, n2] = net.nodes;
    assert.ok(n1 && n2);
    const alice = await connectUser(n1, 'alice');
    const bob = await connectUser(n2, 'bob');
    const key = (await alice.lookup('bob@s2.test')).key;
    const box = inbox(bob);
    const raw = rawDeliveries(bob);
    const envelopes: Envelope[] = [];
    for (let i = 0; i < 200; i++) envelopes.push(await alice.seal([key], `m${i}`));
    const acked: string[] = [];
    const sending = pump(alice, envelopes, 16, acked);
    await until(() => acked.length >= 60, 20_000, 'the stream to flow');
    await net.kill(0);
    await sending;
    assert.ok(acked.length >= 60 && acked.length < 200, `acked ${acked.length}`);
    await net.restart(0);
    const ids = () => new Set(box.messages.map((m) => m.id));
    await until(() => acked.every((id) => ids().has(id)), 30_000, 'every acked message to arrive');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(new Set(raw).size, raw.length, 'the servers delivered no message twice');
    const order = envelopes.map((e) => e.id).filter((id) => ids().has(id));
    assert.deepEqual(
      box.messages.map((m) => m.id),
      order,
      'in send order',
    );
    alice.close();
    bob.close();
  });

  it("the recipient's server dies mid-stream: the outbox resends, nothing acknowledged is lost or doubled", async () => {
    const [n1, n2] = net.nodes;
    assert.ok(n1?.running && n2?.running);
    const alice = await connectUser(n1, 'carol');
    let bob = await connectUser(n2, 'dave');
    const key = (await alice.lookup('dave@s2.test')).key;
    let box = inbox(bob);
    const envelopes: Envelope[] = [];
    for (let i = 0; i < 200; i++) envelopes.push(await alice.seal([key], `n${i}`));
    const sending = pump(alice, envelopes, 16);
    await until(() => box.messages.length >= 40, 20_000, 'the stream to flow');
    await bob.flushAcks();
    const before = box.messages.map((m) => m.id);
    await net.kill(1);
    const acked = await sending;
    assert.equal(acked.length, 200, 's1 is alive: every send is acknowledged into its outbox');
    await net.restart(1);
    bob = await connectUser(n2, 'dave', { identity: bob.identity, register: false });
    box = inbox(bob);
    const raw = rawDeliveries(bob);
    const got = () => new Set([...before, ...box.messages.map((m) => m.id)]);
    await until(() => acked.every((id) => got().has(id)), 40_000, 'every message to arrive');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(new Set(raw).size, raw.length, 'no message was stored twice at s2');
    const all = [...before, ...box.messages.map((m) => m.id).filter((id) => !before.includes(id))];
    assert.deepEqual(
      all,
      envelopes.map((e) => e.id),
      'all 200, in send order',
    );
    alice.close();
    bob.close();
  });
});
