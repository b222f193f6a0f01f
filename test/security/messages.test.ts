import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { newMessageId, type PmbClient } from '../../src/client/index.js';
import type { MessageContent } from '../../src/crypto/index.js';
import type { Envelope } from '../../src/protocol/frames.js';
import type { Frame } from '../helpers/raw.js';
import { RawPeer } from '../helpers/raw.js';
import { connectUser, startServer } from '../helpers/servers.js';
import { until } from '../helpers/wait.js';
import { handMadeBody, inject, loginThrough, lyingServer, watch } from './lying-server.js';

type Server = Awaited<ReturnType<typeof startServer>>;

/**
 * Threats to messages: who a message is from, and whether a body can be passed off as another message.
 * The defences: the server takes `from` only from the logged-in account; the body is signed by the sender
 * and its signed content repeats id, from, to, kind and ts, which the SDK compares with the envelope
 * (protocol.md 8.4). Tests of the crypto layer alone (unsigned, wrongly signed, re-encrypted bodies) are in
 * test/crypto/message.test.ts.
 */
describe('messages: forged senders and injected copies', () => {
  let server: Server;
  let alice: PmbClient;
  let bob: PmbClient;
  let carol: PmbClient;
  let mallory: PmbClient;
  const others: PmbClient[] = [];
  before(async () => {
    server = await startServer();
    alice = await connectUser(server, 'alice');
    bob = await connectUser(server, 'bob');
    carol = await connectUser(server, 'carol');
    mallory = await connectUser(server, 'mallory');
  });
  after(async () => {
    for (const c of [alice, bob, carol, mallory, ...others]) c?.close();
    await server.close();
  });

  const fp = (c: PmbClient) => c.identity.fingerprint;
  /** Another device of `who`'s account, logged in on the honest server. */
  async function device(who: PmbClient, name: string): Promise<PmbClient> {
    const c = await connectUser(server, '', { identity: who.identity, device: name, register: false });
    others.push(c);
    return c;
  }

  it('spoofed from: a send whose from is another account than the one logged in is refused (forbidden)', async () => {
    const dave = await connectUser(server, 'dave');
    const erin = await connectUser(server, 'erin');
    const env = await dave.seal([(await dave.lookup('erin@a.test')).key], 'hi');
    await assert.rejects(dave.sendEnvelope({ ...env, from: erin.identity.fingerprint }), {
      code: 'forbidden',
    });
    dave.close();
    erin.close();
  });

  it('a copy of alice’s message re-sent by its recipient: under her from the server refuses it (forbidden); under his own from alice’s devices refuse it (bad_signature) and a third party cannot read it', async () => {
    const aliceElsewhere = watch(await device(alice, 'dev-resent'));
    const carolSees = watch(carol);
    const env = await alice.seal([(await alice.lookup('bob@a.test')).key], 'for bob only');
    await alice.sendEnvelope(env);
    // Bob holds the envelope exactly as it was delivered to him. As alice's, it goes nowhere:
    await assert.rejects(bob.sendEnvelope(env), { code: 'forbidden' });
    await assert.rejects(bob.sendEnvelope({ ...env, id: newMessageId(), to: [fp(alice)] }), {
      code: 'forbidden',
    });
    // As his own (the server lets him send as himself), the signature inside is still alice's.
    const back: Envelope = { ...env, id: newMessageId(), from: fp(bob), to: [fp(alice)] };
    const on: Envelope = { ...env, id: newMessageId(), from: fp(bob), to: [fp(carol)] };
    await bob.sendEnvelope(back);
    await bob.sendEnvelope(on);
    await until(
      () => aliceElsewhere.refused.length >= 1 && carolSees.refused.length >= 1,
      10_000,
      'the copies to be refused',
    );
    assert.deepEqual(aliceElsewhere.refused, [{ id: back.id, code: 'bad_signature' }]);
    assert.deepEqual(
      aliceElsewhere.shown.map((m) => [m.id, m.outgoing]),
      [[env.id, true]],
      'her other device shows only her own message, once',
    );
    // The body was encrypted to bob and alice only.
    assert.deepEqual(carolSees.refused, [{ id: on.id, code: 'bad_message' }]);
    assert.deepEqual(carolSees.shown, []);
  });

  it('a copy of alice’s message injected as if from her own other device: with a new id, other recipients, another kind or time her device refuses it (bad_message); the genuine copy pushed twice is shown once', async () => {
    const env = await alice.seal([(await alice.lookup('bob@a.test')).key], 'sent from dev1');
    // The server (here: a proxy in front of a real one) pushes copies it made of alice's message to her
    // other device ahead of the genuine copy (after it, the SDK would drop them unread as duplicates of a
    // message already shown), and the genuine copy twice.
    const variants = (e: Envelope): Envelope[] => [
      { ...e, id: newMessageId() },
      { ...e, to: [fp(alice)] },
      { ...e, to: [fp(bob), fp(carol)] },
      { ...e, kind: 'call' },
      { ...e, ts: e.ts - 3600_000 },
    ];
    const lying = await lyingServer(server, (f: Frame) => {
      const e = f.envelope as Envelope | undefined;
      if (f.type !== 'deliver' || e?.id !== env.id) return [f];
      return [...variants(e).map((v) => ({ ...f, envelope: v })), f, f];
    });
    try {
      const dev2 = await loginThrough(lying.url, alice.identity, 'dev-injected');
      others.push(dev2);
      const seen = watch(dev2);
      await alice.sendEnvelope(env);
      await until(
        () => seen.refused.length >= 5 && seen.shown.length >= 1,
        10_000,
        'the injected copies to be refused',
      );
      await dev2.flushAcks();
      assert.deepEqual(
        seen.refused.map((r) => r.code),
        ['bad_message', 'bad_message', 'bad_message', 'bad_message', 'bad_message'],
      );
      assert.deepEqual(seen.shown, [{ id: env.id, from: fp(alice), text: 'sent from dev1', outgoing: true }]);
    } finally {
      await lying.close();
    }
  });

  it('forged and stripped body signatures: a body signed by mallory, or not signed, that the server delivers under alice’s name is refused by bob’s SDK (bad_signature, bad_message) and never shown', async () => {
    const bobElsewhere = watch(await device(bob, 'dev-forged'));
    const bobKey = (await alice.lookup('bob@a.test')).key;
    const make = async (text: string, signer?: PmbClient): Promise<Envelope> => {
      const content: MessageContent = {
        v: 1,
        id: newMessageId(),
        from: fp(alice),
        to: [fp(bob)],
        ts: Date.now(),
        kind: 'msg',
        text,
      };
      const { v: _v, text: _t, ...head } = content;
      return { ...head, bv: 1, body: await handMadeBody(content, [bobKey], signer?.identity) };
    };
    const forged = await make('signed by mallory', mallory);
    const stripped = await make('not signed at all');
    await inject(server, forged, [fp(bob)]);
    await inject(server, stripped, [fp(bob)]);
    await until(() => bobElsewhere.refused.length >= 2, 10_000, 'both bodies to be refused');
    assert.deepEqual(bobElsewhere.refused, [
      { id: forged.id, code: 'bad_signature' },
      { id: stripped.id, code: 'bad_message' },
    ]);
    assert.deepEqual(bobElsewhere.shown, []);
  });

  it('key substitution: a server that answers a lookup of alice’s fingerprint with mallory’s key cannot pass mallory’s messages off as alice’s, to bob or to alice’s own devices (bad_key)', async () => {
    // Mallory's own lookup answer, which the lying server hands out for alice's fingerprint.
    const peer = await RawPeer.open(server.url);
    await peer.hello();
    const mallorys = await peer.request({ type: 'lookup', id: 1, query: fp(mallory) });
    peer.close();
    const lying = await lyingServer(server, (f: Frame) =>
      f.type === 'lookup.ok' && f.fingerprint === fp(alice) ? [{ ...mallorys, id: f.id }] : [f],
    );
    try {
      const bobLied = await loginThrough(lying.url, bob.identity, 'dev-lied-to');
      const aliceLied = await loginThrough(lying.url, alice.identity, 'dev-lied-to');
      others.push(bobLied, aliceLied);
      await assert.rejects(bobLied.lookup(fp(alice)), { code: 'bad_key' });
      const toBob = watch(bobLied);
      const toAlice = watch(aliceLied);
      // Mallory signs; the server labels the envelopes as alice's and delivers them.
      const aliceKey = (await mallory.lookup(fp(alice))).key;
      const bobKey = (await mallory.lookup(fp(bob))).key;
      const forBob = { ...(await mallory.seal([bobKey], 'hi bob, it is alice')), from: fp(alice) };
      const forAlice = { ...(await mallory.seal([aliceKey], 'note to self')), from: fp(alice) };
      await inject(server, forBob, [fp(bob)]);
      await inject(server, forAlice, [fp(alice)]);
      await until(
        () => toBob.refused.length >= 1 && toAlice.refused.length >= 1,
        10_000,
        'both messages to be refused',
      );
      assert.deepEqual(toBob.refused, [{ id: forBob.id, code: 'bad_key' }]);
      assert.deepEqual(toAlice.refused, [{ id: forAlice.id, code: 'bad_key' }]);
      assert.deepEqual([toBob.shown, toAlice.shown], [[], []]);
    } finally {
      await lying.close();
    }
  });
});
