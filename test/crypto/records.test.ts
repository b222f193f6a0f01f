import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import * as openpgp from 'openpgp';
import {
  checkChainLink,
  cosignRecord,
  createRecord,
  decodeRecord,
  recordHash,
  verifyRecord,
} from '../../src/crypto/index.js';
import { sha256, toHex } from '../../src/protocol/bytes.js';
import { encodeCbor } from '../../src/protocol/codec.js';
import { PmbError } from '../../src/protocol/errors.js';
import type { RecordPayload, SignedRecord } from '../../src/protocol/records.js';
import { type Person, people } from './fixtures.js';

let alice: Person;
let registrar: Person;
let mallory: Person;

before(async () => {
  ({ alice, bob: registrar, mallory } = await people());
});

function refusedWith(code: string) {
  return (e: unknown) => {
    assert.ok(e instanceof PmbError, `expected a PmbError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    return true;
  };
}

function binding(over: Partial<Omit<RecordPayload, 'v'>> = {}): Omit<RecordPayload, 'v'> {
  const ts = Date.now();
  return {
    kind: 'binding',
    subject: alice.me.fingerprint,
    seq: 1,
    prev: null,
    ts,
    expires: ts + 3600_000,
    body: { nick: 'alice', domain: 'example.test', registrar: registrar.me.fingerprint },
    ...over,
  };
}

describe('signed records', () => {
  test('a record created by its subject verifies, and its hash is SHA-256 of the payload bytes', async () => {
    const payload = binding();
    const record = await createRecord(alice.me, payload);
    assert.equal(record.sigs.length, 1);
    assert.equal(record.sigs[0]!.by, alice.me.fingerprint);
    assert.deepEqual(
      record.payload,
      encodeCbor({ v: 1, ...payload }),
      'payload bytes are CBOR of {v:1,...} in order',
    );
    const verified = await verifyRecord(record, { subject: alice.pub });
    assert.equal(verified.payload.subject, alice.me.fingerprint);
    assert.equal(verified.payload.kind, 'binding');
    assert.equal(toHex(verified.hash), toHex(await sha256(record.payload)));
    assert.equal(toHex(await recordHash(record)), toHex(verified.hash));
    assert.deepEqual(decodeRecord(record).body, payload.body);
  });

  test('an absent expiry is left out of the payload bytes', async () => {
    const { expires: _, ...rest } = binding();
    const record = await createRecord(alice.me, { ...rest, expires: undefined });
    assert.deepEqual(record.payload, encodeCbor({ v: 1, ...rest }));
    const verified = await verifyRecord(record, { subject: alice.pub });
    assert.equal(verified.payload.expires, undefined);
  });

  test('the registrar cosigns a binding; requireCosigner needs that signature', async () => {
    const record = await createRecord(alice.me, binding());
    await assert.rejects(
      verifyRecord(record, { subject: alice.pub, cosigners: [registrar.pub] }, { requireCosigner: true }),
      refusedWith('bad_signature'),
    );
    const cosigned = await cosignRecord(registrar.me, record);
    assert.deepEqual(
      cosigned.sigs.map((s) => s.by),
      [alice.me.fingerprint, registrar.me.fingerprint],
    );
    assert.deepEqual(cosigned.payload, record.payload);
    await verifyRecord(
      cosigned,
      { subject: alice.pub, cosigners: [registrar.pub] },
      { requireCosigner: true },
    );
    // Cosigning again does not add a second entry for the same signer.
    const again = await cosignRecord(registrar.me, cosigned);
    assert.equal(again.sigs.length, 2);
    // A cosigner other than the one that signed does not count.
    await assert.rejects(
      verifyRecord(cosigned, { subject: alice.pub, cosigners: [mallory.pub] }, { requireCosigner: true }),
      refusedWith('bad_signature'),
    );
  });

  test('signatures by unknown signers are ignored', async () => {
    const record = await cosignRecord(mallory.me, await createRecord(alice.me, binding()));
    await verifyRecord(record, { subject: alice.pub });
  });

  test('an expired record is refused with expired; before expiry it verifies', async () => {
    const ts = Date.now();
    const record = await createRecord(alice.me, binding({ ts, expires: ts + 3600_000 }));
    await verifyRecord(record, { subject: alice.pub });
    await assert.rejects(
      verifyRecord(record, { subject: alice.pub }, { now: ts + 3600_000 }),
      refusedWith('expired'),
    );
    const old = await createRecord(alice.me, binding({ ts: ts - 7200_000, expires: ts - 3600_000 }));
    await assert.rejects(verifyRecord(old, { subject: alice.pub }), refusedWith('expired'));
  });

  test('a forged signature is refused: mallory signs and claims to be alice', async () => {
    const forged = await createRecord(mallory.me, binding());
    const claimed: SignedRecord = {
      payload: forged.payload,
      sigs: [{ by: alice.me.fingerprint, sig: forged.sigs[0]!.sig }],
    };
    await assert.rejects(verifyRecord(claimed, { subject: alice.pub }), refusedWith('bad_signature'));
    await assert.rejects(verifyRecord(forged, { subject: alice.pub }), refusedWith('bad_signature'));
  });

  test('a signature that is not an OpenPGP signature is refused', async () => {
    const record = await createRecord(alice.me, binding());
    const junk: SignedRecord = { ...record, sigs: [{ by: alice.me.fingerprint, sig: new Uint8Array(64) }] };
    await assert.rejects(verifyRecord(junk, { subject: alice.pub }), refusedWith('bad_signature'));
  });

  test('a tampered payload is refused', async () => {
    const record = await createRecord(alice.me, binding());
    const payload = decodeRecord(record);
    const tampered: SignedRecord = {
      payload: new Uint8Array(encodeCbor({ ...payload, body: { ...payload.body, nick: 'mallory' } })),
      sigs: record.sigs,
    };
    await assert.rejects(verifyRecord(tampered, { subject: alice.pub }), refusedWith('bad_signature'));
  });

  test('a record about someone else is refused under the given key', async () => {
    const record = await createRecord(mallory.me, binding({ subject: mallory.me.fingerprint }));
    await assert.rejects(verifyRecord(record, { subject: alice.pub }), refusedWith('bad_signature'));
  });

  test('an undecodable or schema-breaking payload is bad_record', async () => {
    const record = await createRecord(alice.me, binding());
    assert.throws(
      () => decodeRecord({ ...record, payload: new Uint8Array([0xff, 0x00]) }),
      refusedWith('bad_record'),
    );
    const wrong = { ...record, payload: new Uint8Array(encodeCbor({ v: 2, kind: 'binding' })) };
    await assert.rejects(verifyRecord(wrong, { subject: alice.pub }), refusedWith('bad_record'));
    await assert.rejects(createRecord(alice.me, binding({ seq: 0 })), refusedWith('bad_record'));
  });

  test('a detached signature is a standard OpenPGP binary signature over the payload bytes', async () => {
    const record = await createRecord(alice.me, binding());
    const result = await openpgp.verify({
      message: await openpgp.createMessage({ binary: record.payload }),
      signature: await openpgp.readSignature({ binarySignature: record.sigs[0]!.sig }),
      verificationKeys: alice.me.publicKey,
      expectSigned: true,
      format: 'binary',
    });
    assert.equal(result.signatures.length, 1);
  });
});

describe('record chains', () => {
  test('the first record links with seq 1 and no prev; the next names its hash', async () => {
    const first = await createRecord(alice.me, binding());
    const p1 = decodeRecord(first);
    assert.equal(checkChainLink(undefined, p1), 'next');
    const head = { seq: 1, hash: await recordHash(first) };
    const second = await createRecord(alice.me, {
      kind: 'location',
      subject: alice.me.fingerprint,
      seq: 2,
      prev: head.hash,
      ts: Date.now(),
      body: { domain: 'example.test', server: registrar.me.fingerprint },
    });
    const p2 = decodeRecord(second);
    assert.equal(checkChainLink(head, p2), 'next');
  });

  test('a record at or below the head is stale', async () => {
    const head = { seq: 3, hash: new Uint8Array(32).fill(7) };
    assert.equal(
      checkChainLink(head, { ...decodeRecord(await createRecord(alice.me, binding())), seq: 3 }),
      'stale',
    );
    assert.equal(
      checkChainLink(head, { ...decodeRecord(await createRecord(alice.me, binding())), seq: 1 }),
      'stale',
    );
  });

  test('a record naming another predecessor is a fork; so is a gap and a second seq 1 chain start', async () => {
    const base = decodeRecord(await createRecord(alice.me, binding()));
    const head = { seq: 1, hash: new Uint8Array(32).fill(1) };
    assert.equal(checkChainLink(head, { ...base, seq: 2, prev: new Uint8Array(32).fill(2) }), 'fork');
    assert.equal(checkChainLink(head, { ...base, seq: 2, prev: null }), 'fork');
    assert.equal(checkChainLink(head, { ...base, seq: 3, prev: head.hash }), 'fork', 'a gap does not link');
    assert.equal(checkChainLink(undefined, { ...base, seq: 2, prev: head.hash }), 'fork');
    assert.equal(checkChainLink(undefined, { ...base, seq: 1, prev: head.hash }), 'fork');
  });
});
