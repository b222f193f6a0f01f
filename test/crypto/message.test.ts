import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import * as openpgp from 'openpgp';
import { type MessageContent, openMessage, sealMessage } from '../../src/crypto/index.js';
import { randomBytes } from '../../src/protocol/bytes.js';
import { encodeCbor } from '../../src/protocol/codec.js';
import { PmbError } from '../../src/protocol/errors.js';
import { chat, envelopeOf, type Person, people } from './fixtures.js';

let alice: Person;
let bob: Person;
let carol: Person;
let mallory: Person;

before(async () => {
  ({ alice, bob, carol, mallory } = await people());
});

function refusedWith(code: string) {
  return (e: unknown) => {
    assert.ok(e instanceof PmbError, `expected a PmbError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    return true;
  };
}

function tagOf(packet: unknown): number {
  return (packet as { constructor: { tag: number } }).constructor.tag;
}

/** A message signed by `signer` over `content`, encrypted to `to`, made directly with OpenPGP.js. */
async function pgpMessage(content: MessageContent, to: Person[], signer?: Person): Promise<Uint8Array> {
  return openpgp.encrypt({
    message: await openpgp.createMessage({ binary: encodeCbor(content) }),
    encryptionKeys: to.map((p) => p.me.publicKey),
    ...(signer ? { signingKeys: signer.me.privateKey } : {}),
    format: 'binary',
  });
}

describe('sealed messages', () => {
  test('alice seals to bob and carol; both and alice herself (own copy) open it', async () => {
    const content = chat(alice, [bob, carol], 'hi both');
    const body = await sealMessage(alice.me, [bob.pub, carol.pub], content);
    for (const reader of [bob, carol, alice]) {
      const got = await openMessage(reader.me, body, envelopeOf(content, alice));
      assert.deepEqual(got, content, `${reader.name} reads the content`);
    }
  });

  test('the body is SEIPDv1 (no AEAD) with one session key per distinct reader, signed inside', async () => {
    const content = chat(alice, [bob, alice]);
    const body = await sealMessage(alice.me, [bob.pub, alice.pub], content);
    const message = await openpgp.readMessage({ binaryMessage: body });
    const tags = [...message.packets].map(tagOf);
    const T = openpgp.enums.packet;
    assert.equal(tags.filter((t) => t === T.publicKeyEncryptedSessionKey).length, 2, 'alice is deduplicated');
    assert.deepEqual(
      tags.filter((t) => t !== T.publicKeyEncryptedSessionKey),
      [T.symEncryptedIntegrityProtectedData],
    );
    const seipd = message.packets.find((p) => tagOf(p) === T.symEncryptedIntegrityProtectedData);
    assert.equal((seipd as unknown as { version: number }).version, 1);
    const inner = await message.decrypt([bob.me.privateKey]);
    assert.equal(inner.getSigningKeyIDs()[0]?.toHex(), alice.me.publicKey.getKeyID().toHex());
  });

  test('extra content fields travel under the signature', async () => {
    const content = {
      ...chat(alice, [bob]),
      kind: 'receipt',
      of: 'abcdefgh',
      blob: new Uint8Array([1, 2, 3]),
    };
    const body = await sealMessage(alice.me, [bob.pub], content);
    const got = await openMessage(bob.me, body, envelopeOf(content, alice));
    assert.equal(got.of, 'abcdefgh');
    assert.deepEqual([...(got.blob as Uint8Array)], [1, 2, 3]);
  });

  test('sealing refuses content whose from is not the sender or whose to is not the recipients', async () => {
    await assert.rejects(sealMessage(alice.me, [bob.pub], chat(carol, [bob])), refusedWith('bad_message'));
    await assert.rejects(
      sealMessage(alice.me, [bob.pub], chat(alice, [bob, carol])),
      refusedWith('bad_message'),
    );
    await assert.rejects(
      sealMessage(alice.me, [bob.pub, carol.pub], chat(alice, [bob])),
      refusedWith('bad_message'),
    );
    const tooLong = chat(alice, [bob], 'x'.repeat(64 * 1024 + 1));
    await assert.rejects(sealMessage(alice.me, [bob.pub], tooLong), refusedWith('bad_message'));
  });

  test('an unsigned message is refused', async () => {
    const content = chat(alice, [bob]);
    const body = await pgpMessage(content, [bob]);
    await assert.rejects(openMessage(bob.me, body, envelopeOf(content, alice)), (e: unknown) => {
      refusedWith('bad_message')(e);
      assert.match((e as Error).message, /not signed/);
      return true;
    });
  });

  test('a message signed by another key than the envelope sender is refused with bad_signature', async () => {
    const content = chat(alice, [bob]);
    const body = await pgpMessage(content, [bob], mallory);
    await assert.rejects(openMessage(bob.me, body, envelopeOf(content, alice)), refusedWith('bad_signature'));
  });

  test('a message signed but not encrypted is refused', async () => {
    const content = chat(alice, [bob]);
    const body = await openpgp.sign({
      message: await openpgp.createMessage({ binary: encodeCbor(content) }),
      signingKeys: alice.me.privateKey,
      format: 'binary',
    });
    await assert.rejects(openMessage(bob.me, body, envelopeOf(content, alice)), refusedWith('bad_message'));
  });

  test('surreptitious forwarding: bob re-encrypts alice’s signed message to carol, carol gets not_for_me', async () => {
    const content = chat(alice, [bob], 'for bob only');
    const body = await sealMessage(alice.me, [bob.pub], content);
    // Bob decrypts it, keeps alice's signature over the content as it is...
    const opened = await openpgp.decrypt({
      message: await openpgp.readMessage({ binaryMessage: body }),
      decryptionKeys: bob.me.privateKey,
      verificationKeys: alice.me.publicKey,
      expectSigned: true,
      format: 'binary',
    });
    const [aliceSignature] = opened.signatures;
    assert.ok(aliceSignature);
    // ...and encrypts the same signed content to carol: the signature still verifies, only the recipients
    // named under it give the forwarding away.
    const forwarded = await openpgp.encrypt({
      message: await openpgp.createMessage({ binary: opened.data }),
      signature: await aliceSignature.signature,
      encryptionKeys: carol.me.publicKey,
      format: 'binary',
    });
    const check = await openpgp.decrypt({
      message: await openpgp.readMessage({ binaryMessage: forwarded }),
      decryptionKeys: carol.me.privateKey,
      verificationKeys: alice.me.publicKey,
      expectSigned: true,
      format: 'binary',
    });
    assert.deepEqual(check.data, opened.data, "carol sees alice's valid signature");
    const relabelled = { id: content.id, from: alice.pub, to: [carol.me.fingerprint] };
    await assert.rejects(openMessage(carol.me, forwarded, relabelled), refusedWith('not_for_me'));
    const asIs = envelopeOf(content, alice);
    await assert.rejects(openMessage(carol.me, forwarded, asIs), refusedWith('not_for_me'));
  });

  test('an envelope whose id was swapped is refused', async () => {
    const content = chat(alice, [bob]);
    const body = await sealMessage(alice.me, [bob.pub], content);
    const swapped = { ...envelopeOf(content, alice), id: 'another-id-1234' };
    await assert.rejects(openMessage(bob.me, body, swapped), refusedWith('bad_message'));
  });

  test('an envelope whose recipients differ from the signed ones is refused', async () => {
    const content = chat(alice, [bob, carol]);
    const body = await sealMessage(alice.me, [bob.pub, carol.pub], content);
    const narrowed = { ...envelopeOf(content, alice), to: [bob.me.fingerprint] };
    await assert.rejects(openMessage(bob.me, body, narrowed), refusedWith('bad_message'));
  });

  test('an envelope whose kind differs from the signed one is refused when the kind is checked', async () => {
    const content = chat(alice, [bob]);
    const body = await sealMessage(alice.me, [bob.pub], content);
    await openMessage(bob.me, body, { ...envelopeOf(content, alice), kind: 'msg' });
    await assert.rejects(
      openMessage(bob.me, body, { ...envelopeOf(content, alice), kind: 'receipt' }),
      refusedWith('bad_message'),
    );
  });

  test('signed content naming another sender than the envelope is refused', async () => {
    // Mallory signs content that claims to come from alice; the envelope says mallory.
    const content = chat(alice, [bob]);
    const body = await pgpMessage(content, [bob], mallory);
    await assert.rejects(
      openMessage(bob.me, body, { id: content.id, from: mallory.pub, to: content.to }),
      refusedWith('bad_message'),
    );
  });

  test('a message without integrity protection (SED, no MDC) is refused', async () => {
    const content = chat(alice, [bob]);
    const signed = await openpgp.sign({
      message: await openpgp.createMessage({ binary: encodeCbor(content) }),
      signingKeys: alice.me.privateKey,
      format: 'object',
    });
    const sessionKey = { data: randomBytes(32), algorithm: 'aes256' as const };
    const sed = new openpgp.SymmetricallyEncryptedDataPacket() as unknown as {
      packets: unknown;
      encrypt(algorithm: number, key: Uint8Array, config: openpgp.Config): Promise<void>;
    };
    sed.packets = signed.packets;
    await sed.encrypt(openpgp.enums.symmetric.aes256, sessionKey.data, openpgp.config);
    const pkesk = await openpgp.encryptSessionKey({
      ...sessionKey,
      encryptionKeys: bob.me.publicKey,
      format: 'object',
    });
    const list = new openpgp.PacketList<openpgp.AnyPacket>();
    list.push(...pkesk.packets, sed as unknown as openpgp.AnyPacket);
    const body = list.write();

    // The crafted body is otherwise sound: OpenPGP.js reads it when told to allow unauthenticated data.
    const insecure = await openpgp.decrypt({
      message: await openpgp.readMessage({ binaryMessage: body }),
      decryptionKeys: bob.me.privateKey,
      verificationKeys: alice.me.publicKey,
      expectSigned: true,
      format: 'binary',
      config: { allowUnauthenticatedMessages: true },
    });
    assert.deepEqual(insecure.data, encodeCbor(content));

    await assert.rejects(openMessage(bob.me, body, envelopeOf(content, alice)), refusedWith('bad_message'));
  });

  test('a tampered ciphertext is refused', async () => {
    const content = chat(alice, [bob]);
    const body = await sealMessage(alice.me, [bob.pub], content);
    const tampered = body.slice();
    tampered[tampered.length - 30]! ^= 0x01;
    await assert.rejects(
      openMessage(bob.me, tampered, envelopeOf(content, alice)),
      refusedWith('bad_message'),
    );
  });

  test('a message not encrypted to me, garbage and oversized bodies are refused', async () => {
    const content = chat(alice, [bob]);
    const body = await sealMessage(alice.me, [bob.pub], content);
    const expect = envelopeOf(content, alice);
    await assert.rejects(openMessage(carol.me, body, expect), refusedWith('bad_message'));
    await assert.rejects(openMessage(bob.me, randomBytes(500), expect), refusedWith('bad_message'));
    await assert.rejects(
      openMessage(bob.me, new Uint8Array(256 * 1024 + 1), expect),
      refusedWith('bad_message'),
    );
  });

  test('signed content that is not PMB content is refused', async () => {
    const id = 'abcdefgh-notcontent';
    const body = await openpgp.encrypt({
      message: await openpgp.createMessage({ binary: encodeCbor({ v: 2, id }) }),
      encryptionKeys: bob.me.publicKey,
      signingKeys: alice.me.privateKey,
      format: 'binary',
    });
    await assert.rejects(
      openMessage(bob.me, body, { id, from: alice.pub, to: [bob.me.fingerprint] }),
      refusedWith('bad_message'),
    );
  });
});
