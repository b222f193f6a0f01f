import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, test } from 'node:test';
import {
  decodeRecord,
  openMessage,
  readPublicIdentity,
  recordHash,
  unlockIdentity,
  verifyRecord,
} from '../../src/crypto/index.js';
import { fromHex, toHex } from '../../src/protocol/bytes.js';
import { envelope as envelopeSchema } from '../../src/protocol/frames.js';
import { type SignedRecord, signedRecord } from '../../src/protocol/records.js';

interface RecordVector {
  subjectPublicKey: string;
  registrarPublicKey: string;
  record: { payload: string; sigs: { by: string; sig: string }[] };
  payload: unknown;
  hash: string;
  verifyAt: number;
}

interface MessageVector {
  recipientSecretKey: string;
  senderPublicKey: string;
  envelope: Record<string, unknown> & { body: string };
  content: unknown;
}

/** The vectors live in the source tree (test/vectors/); this file runs from dist/test/crypto/. */
async function vector<T>(name: string): Promise<T> {
  return JSON.parse(await readFile(new URL(`../../../test/vectors/${name}`, import.meta.url), 'utf8')) as T;
}

describe('test vectors', () => {
  test('signed-record.json: the binding verifies with both keys and decodes to the expected payload', async () => {
    const v = await vector<RecordVector>('signed-record.json');
    const record: SignedRecord = signedRecord.parse({
      payload: fromHex(v.record.payload),
      sigs: v.record.sigs.map((s) => ({ by: s.by, sig: fromHex(s.sig) })),
    });
    const subject = await readPublicIdentity(v.subjectPublicKey);
    const registrar = await readPublicIdentity(v.registrarPublicKey);
    const verified = await verifyRecord(
      record,
      { subject, cosigners: [registrar] },
      { now: v.verifyAt, requireCosigner: true },
    );
    assert.equal(toHex(verified.hash), v.hash);
    assert.equal(toHex(await recordHash(record)), v.hash);
    // JSON has no byte strings: prev is null in a seq-1 record, so the payload compares as plain data.
    assert.deepEqual({ ...decodeRecord(record) }, v.payload);
    assert.equal(verified.payload.body.registrar, registrar.fingerprint);
  });

  test('message-body.json: the recipient opens the body and gets the expected content', async () => {
    const v = await vector<MessageVector>('message-body.json');
    const me = await unlockIdentity(v.recipientSecretKey);
    const sender = await readPublicIdentity(v.senderPublicKey);
    const env = envelopeSchema.parse({ ...v.envelope, body: fromHex(v.envelope.body) });
    assert.equal(sender.fingerprint, env.from);
    const content = await openMessage(me, env.body, { id: env.id, from: sender, to: env.to });
    assert.deepEqual({ ...content }, v.content);
  });
});
