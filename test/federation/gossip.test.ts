import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  cosignRecord,
  createRecord,
  generateIdentity,
  type Identity,
  recordHash,
} from '../../src/crypto/index.js';
import { MAX_FORGED_PER_LINK } from '../../src/federation/gossip.js';
import { BINDING_TTL_MS, type SignedRecord } from '../../src/protocol/records.js';
import type { PmbServer } from '../../src/server/index.js';
import { startNetwork, type TestNetwork } from '../helpers/network.js';
import { RawPeer } from '../helpers/raw.js';
import { rawLink } from '../helpers/raw-link.js';
import { connectUser, newIdentity } from '../helpers/servers.js';
import { until } from '../helpers/wait.js';

const owner = (s: PmbServer, nick: string, domain: string) =>
  s.context.store.identities.bindingOwner(nick, domain, Date.now());
const feedHead = (s: PmbServer) => s.context.store.identities.feedHead();

describe('directory replication (gossip): s1 - s2 - s3 in a line, s4 joins late linking to s1', () => {
  let net: TestNetwork;
  let alice: Identity;
  let aliceBinding: SignedRecord;
  before(async () => {
    net = await startNetwork(4, { links: { backoff: { initialMs: 50, maxMs: 400 } } });
    await net.stop(3); // s4 starts later
    const [s1, s2] = net.servers as [PmbServer, PmbServer];
    await s1.context.links.connect('s2.test');
    await s2.context.links.connect('s3.test');
  });
  after(async () => {
    await net.close();
  });

  it('alice registers on s1; s2 and s3 (two hops away) learn her key and binding', async () => {
    const [s1, s2, s3] = net.servers as [PmbServer, PmbServer, PmbServer];
    alice = await newIdentity();
    const client = await connectUser(s1, 'alice', { identity: alice });
    client.close();
    aliceBinding = s1.context.store.identities.records(alice.fingerprint).map((r) => ({
      payload: r.payload,
      sigs: [],
    }))[0] as SignedRecord;
    await until(() => owner(s2, 'alice', 's1.test') === alice.fingerprint, 10_000, 's2 to learn alice');
    await until(() => owner(s3, 'alice', 's1.test') === alice.fingerprint, 10_000, 's3 to learn alice');
    assert.deepEqual(
      new Uint8Array(s3.context.store.identities.publicKey(alice.fingerprint) ?? []),
      new Uint8Array(alice.publicKeyBytes),
    );
    assert.equal(s3.context.store.identities.domainKey('s1.test'), s1.fingerprint);
  });

  it('lookup alice@s1.test on s3 answers from the replicated records, server = the binding’s domain', async () => {
    const s3 = net.servers[2] as PmbServer;
    const carol = await connectUser(s3, 'carol');
    carol.close();
    // The raw answer: the SDK trusts only its own server as a registrar for now (a later step).
    const peer = await RawPeer.open(s3.url);
    try {
      await peer.hello();
      const res = await peer.request({ type: 'lookup', id: 1, query: 'alice@s1.test' });
      assert.equal(res.type, 'lookup.ok', JSON.stringify(res));
      assert.equal(res.fingerprint, alice.fingerprint);
      assert.equal(res.server, 's1.test');
      assert.equal((res.records as unknown[]).length, 1);
      const byFp = await peer.request({ type: 'lookup', id: 2, query: alice.fingerprint });
      assert.equal(byFp.server, 's1.test');
      const local = await peer.request({ type: 'lookup', id: 3, query: 'carol@s3.test' });
      assert.equal(local.server, 's3.test');
    } finally {
      peer.close();
    }
  });

  it('a late joiner (s4 started after the registrations, linking to s1) catches up', async () => {
    const s4 = await net.restart(3);
    await s4.context.links.connect('s1.test');
    await until(() => owner(s4, 'alice', 's1.test') === alice.fingerprint, 10_000, 's4 to catch up');
    await until(() => owner(s4, 'carol', 's3.test') !== undefined, 10_000, 's4 to learn carol@s3');
    await until(
      () => s4.context.store.identities.peerPosition('s1.test') > 0,
      5000,
      'the position in s1’s feed',
    );
  });

  it('forged records pushed by a peer are refused and not passed on', async () => {
    const [s1, s2, s3, s4] = net.servers as [PmbServer, PmbServer, PmbServer, PmbServer];
    // A raw peer speaking as s4 (its real key and record) to s2.
    const raw = await rawLink(s2, { identity: s4.context.identity, record: s4.context.serverRecord });
    const eve = await newIdentity();
    const fake = (await generateIdentity()).identity;
    const now = Date.now();
    const evePayload = {
      kind: 'binding' as const,
      subject: eve.fingerprint,
      seq: 1,
      prev: null,
      ts: now,
      expires: now + BINDING_TTL_MS,
      body: { nick: 'eve', domain: 's1.test', registrar: s1.fingerprint },
    };
    // Cosigned by a key that is not s1's.
    const notCosigned = await cosignRecord(fake, await createRecord(eve, evePayload));
    // Signed by another key than the subject's.
    const wrongSigner = await createRecord(fake, { ...evePayload, subject: fake.fingerprint });
    const forgedSubject = { payload: wrongSigner.payload, sigs: wrongSigner.sigs };
    // A real record, tampered with after signing.
    const real = s1.context.store.identities.records(alice.fingerprint)[0];
    assert.ok(real);
    const held = (await import('../../src/store/index.js')).storedToSigned(real);
    const tampered = { payload: new Uint8Array(held.payload), sigs: held.sigs };
    tampered.payload[tampered.payload.length - 1] = (tampered.payload.at(-1) as number) ^ 1;
    const before = [feedHead(s1), feedHead(s2), feedHead(s3)];
    const res = await raw.request('s2s.records', {
      items: [
        { record: notCosigned, publicKey: eve.publicKeyBytes },
        { record: forgedSubject, publicKey: eve.publicKeyBytes },
        { record: tampered, publicKey: alice.publicKeyBytes },
      ],
    });
    assert.equal(res.type, 's2s.records.ok', JSON.stringify(res));
    assert.equal(res.accepted, 0);
    assert.equal(owner(s2, 'eve', 's1.test'), undefined);
    assert.ok((s2.context.gossip.refused.get('s4.test') ?? 0) >= 3);
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual([feedHead(s1), feedHead(s2), feedHead(s3)], before, 'nothing entered any feed');
    assert.equal(s3.context.store.identities.publicKey(eve.fingerprint), undefined);
    // A peer that keeps sending forgeries loses its link.
    const flood = Array.from({ length: MAX_FORGED_PER_LINK }, () => ({
      record: forgedSubject,
      publicKey: eve.publicKeyBytes,
    }));
    void raw.request('s2s.records', { items: flood }).catch(() => {});
    const closed = await raw.peer.closed(10_000);
    assert.equal(closed.code, 1008);
    assert.match(closed.reason, /forged/);
  });

  it('a new record floods; a replayed older record is not accepted as new', async () => {
    const [s1, s2, s3] = net.servers as [PmbServer, PmbServer, PmbServer];
    const s4 = net.servers[3] as PmbServer;
    const raw = await rawLink(s2, { identity: s4.context.identity, record: s4.context.serverRecord });
    const held = s2.context.store.identities.records(alice.fingerprint);
    const first = (await import('../../src/store/index.js')).storedToSigned(held[0] as never);
    const second = await createRecord(alice, {
      kind: 'profile',
      subject: alice.fingerprint,
      seq: 2,
      prev: await recordHash(first),
      ts: Date.now(),
      body: {},
    });
    const item2 = { record: second, publicKey: alice.publicKeyBytes };
    const res = await raw.request('s2s.records', { items: [item2] });
    assert.equal(res.accepted, 1);
    for (const s of [s1, s3]) {
      await until(
        () => s.context.store.identities.head(alice.fingerprint)?.seq === 2,
        10_000,
        `${s.context.config.domain} to get seq 2`,
      );
    }
    const heads = [feedHead(s1), feedHead(s2), feedHead(s3)];
    // The older record again, and the newest again: neither is new.
    const again = await raw.request('s2s.records', {
      items: [{ record: first, publicKey: alice.publicKeyBytes }, item2],
    });
    assert.equal(again.accepted, 0);
    // Another record for seq 1 (a fork) is refused and kept as evidence.
    const other = await createRecord(alice, {
      kind: 'profile',
      subject: alice.fingerprint,
      seq: 1,
      prev: null,
      ts: Date.now(),
      body: {},
    });
    const fork = await raw.request('s2s.records', {
      items: [{ record: other, publicKey: alice.publicKeyBytes }],
    });
    assert.equal(fork.accepted, 0);
    assert.ok(s2.context.store.identities.conflicts(alice.fingerprint).some((c) => c.seq === 1));
    // A record beyond the head + 1 is a gap: refused unless the missing records can be fetched.
    const gap = await createRecord(alice, {
      kind: 'profile',
      subject: alice.fingerprint,
      seq: 5,
      prev: await recordHash(second),
      ts: Date.now(),
      body: {},
    });
    const gapAnswer = raw.request('s2s.records', {
      items: [{ record: gap, publicKey: alice.publicKeyBytes }],
    });
    // The receiver asks the sender for the missing records (s2s.record); this sender has none to give.
    const ask = await raw.peer.next((f) => f.type === 's2s.record');
    assert.equal(ask.subject, alice.fingerprint);
    assert.equal(ask.since, 2);
    raw.peer.send({ type: 's2s.record.ok', id: ask.id, items: [] });
    assert.equal((await gapAnswer).accepted, 0);
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual([feedHead(s1), feedHead(s2), feedHead(s3)], heads, 'no feed moved');
    assert.equal(s2.context.store.identities.head(alice.fingerprint)?.seq, 2);
    // When the sender does have the missing records, the gap is filled and the record accepted.
    const third = await createRecord(alice, {
      kind: 'profile',
      subject: alice.fingerprint,
      seq: 3,
      prev: await recordHash(second),
      ts: Date.now(),
      body: {},
    });
    const fourth = await createRecord(alice, {
      kind: 'profile',
      subject: alice.fingerprint,
      seq: 4,
      prev: await recordHash(third),
      ts: Date.now(),
      body: {},
    });
    const filled = raw.request('s2s.records', {
      items: [{ record: fourth, publicKey: alice.publicKeyBytes }],
    });
    const ask2 = await raw.peer.next((f) => f.type === 's2s.record');
    raw.peer.send({
      type: 's2s.record.ok',
      id: ask2.id,
      items: [{ record: third, publicKey: alice.publicKeyBytes }],
    });
    assert.equal((await filled).accepted, 1);
    assert.equal(s2.context.store.identities.head(alice.fingerprint)?.seq, 4);
    raw.peer.close();
    await raw.peer.closed();
    void aliceBinding;
  });
});
