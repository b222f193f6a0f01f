/**
 * Writes the crypto test vectors (signed-record.json, message-body.json) next to this file. Run by hand,
 * once, after `npm run build`:  node dist/test/vectors/generate.js --write
 * Without --write it does nothing, because `node --test dist/test/` also runs every file under test/.
 * The keys in the vectors are test-only keys made here and used nowhere else.
 */
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import {
  armorPublicKey,
  armorSecretKey,
  cosignRecord,
  createRecord,
  decodeRecord,
  generateIdentity,
  type MessageContent,
  readPublicIdentity,
  recordHash,
  sealMessage,
} from '../../src/crypto/index.js';
import { toHex } from '../../src/protocol/bytes.js';
import { BINDING_TTL_MS } from '../../src/protocol/records.js';

/** test/vectors/ in the source tree, from dist/test/vectors/ where this runs. */
const OUT = new URL('../../../test/vectors/', import.meta.url);

async function main(): Promise<void> {
  const { identity: subject } = await generateIdentity({ userId: 'vector alice <alice@example.test>' });
  const { identity: registrar } = await generateIdentity({ userId: 'vector registrar <pmb@example.test>' });
  const ts = Date.now();
  const created = await createRecord(subject, {
    kind: 'binding',
    subject: subject.fingerprint,
    seq: 1,
    prev: null,
    ts,
    expires: ts + BINDING_TTL_MS,
    body: { nick: 'alice', domain: 'example.test', registrar: registrar.fingerprint },
  });
  const record = await cosignRecord(registrar, created);
  const signedRecord = {
    description:
      'A nickname binding (seq 1) signed by its subject and countersigned by the registrar. ' +
      'payload is the CBOR that was signed; each sig is a binary OpenPGP detached signature over it. ' +
      'Verify at verifyAt (ms): the binding expires after a year.',
    subjectPublicKey: armorPublicKey(subject),
    registrarPublicKey: armorPublicKey(registrar),
    record: { payload: toHex(record.payload), sigs: record.sigs.map((s) => ({ by: s.by, sig: toHex(s.sig) })) },
    payload: decodeRecord(record),
    hash: toHex(await recordHash(record)),
    verifyAt: ts + 1000,
  };

  const { identity: sender } = await generateIdentity({ userId: 'vector sender <sender@example.test>' });
  const { identity: recipient } = await generateIdentity({ userId: 'vector recipient <recipient@example.test>' });
  const content: MessageContent = {
    v: 1,
    id: 'vector-message-0001',
    from: sender.fingerprint,
    to: [recipient.fingerprint],
    ts,
    kind: 'msg',
    text: 'Hello from the PMB test vectors: ünïcødé ✓',
  };
  const body = await sealMessage(sender, [await readPublicIdentity(recipient.publicKeyBytes)], content);
  const messageBody = {
    description:
      'A message body (bv 1): CBOR content signed by the sender and encrypted (SEIPDv1) to the recipient and ' +
      'the sender. recipientSecretKey is an unprotected TEST-ONLY key.',
    recipientSecretKey: armorSecretKey(recipient),
    senderPublicKey: armorPublicKey(sender),
    envelope: { id: content.id, from: content.from, to: content.to, ts: content.ts, kind: content.kind, bv: 1, body: toHex(body) },
    content,
  };

  await writeFile(new URL('signed-record.json', OUT), `${JSON.stringify(signedRecord, null, 2)}\n`);
  await writeFile(new URL('message-body.json', OUT), `${JSON.stringify(messageBody, null, 2)}\n`);
  console.log(`wrote vectors to ${fileURLToPath(OUT)}`);
}

if (process.argv.includes('--write')) await main();
