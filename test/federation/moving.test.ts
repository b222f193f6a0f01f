import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { PmbClient as Client, type PmbClient } from '../../src/client/index.js';
import { createRecord, recordHash } from '../../src/crypto/index.js';
import type { PmbServer } from '../../src/server/index.js';
import { storedToSigned } from '../../src/store/index.js';
import { linkAll, startNetwork, type TestNetwork } from '../helpers/network.js';
import { rawLink } from '../helpers/raw-link.js';
import { connectUser, inbox, NodeWebSocket } from '../helpers/servers.js';
import { until } from '../helpers/wait.js';

const fast = { links: { backoff: { initialMs: 50, maxMs: 400 } } };
const where = (s: PmbServer, fp: string) => s.context.store.identities.location(fp);

/** Log an existing identity in on another server (as `pmb login --server URL` does). */
async function loginOn(
  server: PmbServer,
  who: PmbClient,
  move: boolean,
  device = 'dev1',
): Promise<PmbClient> {
  const c = await Client.connect({
    url: server.url,
    WebSocket: NodeWebSocket,
    identity: who.identity,
    device,
  });
  await c.login({ move });
  return c;
}

describe('moving accounts: bob moves from s2.test to s3.test, where he has never been', () => {
  let net: TestNetwork;
  let alice: PmbClient;
  let bob: PmbClient;
  before(async () => {
    net = await startNetwork(3, fast);
    await linkAll(net);
    const [s1, s2, s3] = net.servers as [PmbServer, PmbServer, PmbServer];
    alice = await connectUser(s1, 'alice');
    bob = await connectUser(s2, 'bob');
    await until(() => where(s3, bob.identity.fingerprint) === 's2.test', 10_000, 's3 to learn bob');
    await until(() => where(s1, bob.identity.fingerprint) === 's2.test', 10_000, 's1 to learn bob');
  });
  after(async () => {
    alice?.close();
    bob?.close();
    await net.close();
  });

  it('mail queued for bob at s2 is forwarded, every server routes to s3, s2 stops acting for bob', async () => {
    const [s1, s2, s3] = net.servers as [PmbServer, PmbServer, PmbServer];
    const fp = bob.identity.fingerprint;
    const onS2 = await loginOn(s2, bob, false, 'dev2'); // a second device, still on s2
    const closed = new Promise<number>((resolve) => {
      onS2.events.close = (code) => resolve(code);
    });
    bob.close();
    for (const t of ['one', 'two', 'three']) await alice.send('bob@s2.test', t);
    await until(
      () => s2.context.store.mailbox.head(fp) > 0 && s1.context.mail.outbox.pending() === 0,
      10_000,
      'mail at s2',
    );

    const moved = await loginOn(s3, bob, true);
    const box = inbox(moved);
    for (const s of [s1, s2, s3])
      await until(() => where(s, fp) === 's3.test', 10_000, `${s.config.domain} to route to s3`);
    // The device still on s2 is told and disconnected.
    assert.equal(await closed, 1008);
    await box.waitFor(3, 10_000);
    assert.deepEqual(
      box.messages.map((m) => m.text),
      ['one', 'two', 'three'],
    );
    assert.equal(
      s2.context.store.mailbox.head(fp) === 0 || s2.context.store.mailbox.after(fp, 0, 10).length === 0,
      true,
    );

    // Addressed by his old name, mail now goes straight to s3.
    await alice.send('bob@s2.test', 'four');
    await box.waitFor(4, 10_000);
    assert.equal(box.messages[3]?.text, 'four');

    // s2 no longer acts for bob: a login there says where he lives, and sending from there is refused.
    const back = await loginOn(s2, bob, false, 'dev3');
    const res = await back.conn.request((await import('../../src/protocol/frames.js')).Lookup, { query: fp });
    assert.equal(res.server, 's3.test');
    await assert.rejects(back.send(alice.identity.fingerprint, 'from the old server'), { code: 'moved' });
    back.close();
    bob = moved;
  });

  it('a location record not signed by bob (a server claiming he moved) is refused everywhere', async () => {
    const [s1, , s3] = net.servers as [PmbServer, PmbServer, PmbServer];
    const fp = bob.identity.fingerprint;
    const head = s3.context.store.identities.records(fp).at(-1);
    assert.ok(head);
    const forged = await createRecord(s1.context.identity, {
      kind: 'location',
      subject: fp,
      seq: head.seq + 1,
      prev: await recordHash(storedToSigned(head)),
      ts: Date.now(),
      body: { domain: 's1.test', server: s1.fingerprint },
    });
    const raw = await rawLink(s3, { identity: s1.context.identity, record: s1.context.serverRecord });
    const res = await raw.request('s2s.records', {
      items: [{ record: forged, publicKey: bob.identity.publicKeyBytes }],
    });
    assert.equal(res.accepted, 0);
    raw.peer.close();
    assert.equal(where(s3, fp), 's3.test');
  });

  it('a replayed old location record does not move bob back', async () => {
    const [s1, s2, s3] = net.servers as [PmbServer, PmbServer, PmbServer];
    const fp = bob.identity.fingerprint;
    // bob moves back to s2, then the record that once moved him to s3 is pushed again.
    const s3Location = s3.context.store.identities
      .records(fp)
      .filter((r) => r.kind === 'location')
      .at(-1);
    assert.ok(s3Location);
    const home = await loginOn(s2, bob, true, 'dev4');
    await until(() => where(s3, fp) === 's2.test', 10_000, 's3 to see bob back on s2');
    const raw = await rawLink(s2, { identity: s1.context.identity, record: s1.context.serverRecord });
    const res = await raw.request('s2s.records', {
      items: [{ record: storedToSigned(s3Location), publicKey: bob.identity.publicKeyBytes }],
    });
    assert.equal(res.accepted, 0);
    raw.peer.close();
    assert.equal(where(s2, fp), 's2.test');
    home.close();
  });
});

describe('a dead server does not take its users with it', () => {
  let net: TestNetwork;
  let alice: PmbClient;
  before(async () => {
    net = await startNetwork(3, fast);
    await linkAll(net);
  });
  after(async () => {
    alice?.close();
    await net.close();
  });

  it('s2 is shut down for good; bob@s2.test still resolves, bob moves to s3 and mail queued for s2 reaches him there', async () => {
    const [s1, s2, s3] = net.servers as [PmbServer, PmbServer, PmbServer];
    alice = await connectUser(s1, 'alice');
    const bob = await connectUser(s2, 'bob');
    const fp = bob.identity.fingerprint;
    await until(
      () => where(s3, fp) === 's2.test' && where(s1, fp) === 's2.test',
      10_000,
      'bob to be replicated',
    );
    bob.close();
    await net.stop(1);
    // Sent while s2 is dead: acknowledged by s1, waiting in its outbox.
    await alice.send('bob@s2.test', 'are you there?');
    assert.equal(s1.context.mail.outbox.pending('s2.test'), 1);
    assert.equal((await alice.lookup('bob@s2.test')).fingerprint, fp);

    const moved = await loginOn(s3, bob, true);
    const box = inbox(moved);
    await until(() => where(s1, fp) === 's3.test', 10_000, 's1 to learn the move');
    await box.waitFor(1, 10_000);
    assert.equal(box.messages[0]?.text, 'are you there?');
    await alice.send('bob@s2.test', 'found you');
    await box.waitFor(2, 10_000);
    assert.equal(box.messages[1]?.text, 'found you');
    assert.equal(s1.context.mail.outbox.pending('s2.test'), 0);
    moved.close();
  });
});
