import * as openpgp from 'openpgp';
import { decodeCanonicalCbor } from '../protocol/codec.js';
import { PmbError } from '../protocol/errors.js';
import { MAX_BODY_BYTES, pgpConfig, verificationDate } from './config.js';
import { type MessageContent, messageContent } from './content.js';
import { encodeMap } from './encode.js';
import type { Identity, PublicIdentity } from './keys.js';

/**
 * Body version 1: the CBOR content, signed by the sender, then encrypted (SEIPDv1) to every recipient and
 * to the sender's own key, so the sender's other devices can read what was sent.
 */
export async function sealMessage(
  from: Identity,
  recipients: PublicIdentity[],
  content: MessageContent,
): Promise<Uint8Array> {
  const parsed = messageContent.safeParse(content);
  if (!parsed.success) throw new PmbError('bad_message', `Invalid message content: ${parsed.error.message}`);
  if (content.from !== from.fingerprint) {
    throw new PmbError('bad_message', 'content.from must be the fingerprint of the sending identity');
  }
  if (
    !sameSet(
      content.to,
      recipients.map((r) => r.fingerprint),
    )
  ) {
    throw new PmbError('bad_message', "content.to must list exactly the recipients' fingerprints");
  }
  const keys = new Map<string, openpgp.PublicKey>();
  for (const r of [...recipients, from]) keys.set(r.fingerprint, r.publicKey);

  const message = await openpgp.createMessage({ binary: encodeMap(content), format: 'binary' });
  let body: Uint8Array;
  try {
    body = await openpgp.encrypt({
      message,
      encryptionKeys: [...keys.values()],
      signingKeys: from.privateKey,
      format: 'binary',
      config: pgpConfig,
    });
  } catch (cause) {
    throw new PmbError('bad_key', 'Cannot encrypt to one of the recipient keys', { cause });
  }
  if (body.length > MAX_BODY_BYTES)
    throw new PmbError('bad_message', `The body exceeds ${MAX_BODY_BYTES} bytes`);
  return body;
}

/**
 * Decrypts a body, requires the expected sender's signature and checks that the signed content matches
 * the envelope. The content's recipients are checked against `me` before the envelope's: a body that a
 * recipient re-encrypted to someone else (surreptitious forwarding) is refused as not_for_me.
 */
export async function openMessage(
  me: Identity,
  body: Uint8Array,
  /** The envelope's fields. kind is optional (checked when given) so that callers written before it still fit. */
  expect: { id: string; from: PublicIdentity; to: string[]; kind?: string },
): Promise<MessageContent> {
  if (body.length > MAX_BODY_BYTES)
    throw new PmbError('bad_message', `The body exceeds ${MAX_BODY_BYTES} bytes`);
  const date = verificationDate();
  let data: Uint8Array;
  try {
    const message = await openpgp.readMessage({ binaryMessage: body, config: pgpConfig });
    const result = await openpgp.decrypt({
      message,
      decryptionKeys: me.privateKey,
      verificationKeys: expect.from.publicKey,
      expectSigned: true,
      format: 'binary',
      date,
      config: pgpConfig,
    });
    data = result.data;
  } catch (cause) {
    throw await whyRefused(me, body, expect.from, date, cause);
  }

  let decoded: unknown;
  try {
    decoded = decodeCanonicalCbor(data);
  } catch (cause) {
    throw new PmbError('bad_message', 'The message content is not CBOR', { cause });
  }
  const parsed = messageContent.safeParse(decoded);
  if (!parsed.success) throw new PmbError('bad_message', `Invalid message content: ${parsed.error.message}`);
  const content = parsed.data;
  if (content.from !== expect.from.fingerprint) {
    throw new PmbError('bad_message', 'The signed content names another sender than the envelope');
  }
  if (content.id !== expect.id)
    throw new PmbError('bad_message', 'The signed content has another id than the envelope');
  if (!content.to.includes(me.fingerprint) && content.from !== me.fingerprint) {
    throw new PmbError('not_for_me', 'The sender did not address this message to this identity');
  }
  if (!sameSet(content.to, expect.to)) {
    throw new PmbError('bad_message', 'The signed content has other recipients than the envelope');
  }
  if (expect.kind !== undefined && content.kind !== expect.kind) {
    throw new PmbError('bad_message', 'The signed content has another kind than the envelope');
  }
  return content;
}

/**
 * openpgp.decrypt with expectSigned decided that the body is unacceptable; decrypt it again without
 * verification only to pick the error code. Costs a second decryption on failures only.
 */
async function whyRefused(
  me: Identity,
  body: Uint8Array,
  sender: PublicIdentity,
  date: Date,
  cause: unknown,
): Promise<PmbError> {
  let signatures: openpgp.DecryptMessageResult['signatures'];
  try {
    const message = await openpgp.readMessage({ binaryMessage: body, config: pgpConfig });
    ({ signatures } = await openpgp.decrypt({
      message,
      decryptionKeys: me.privateKey,
      format: 'binary',
      date,
      config: pgpConfig,
    }));
  } catch {
    return new PmbError(
      'bad_message',
      'The body cannot be decrypted with this key or is not integrity protected',
      {
        cause,
      },
    );
  }
  if (signatures.length === 0) return new PmbError('bad_message', 'The message is not signed', { cause });
  const senderIds = sender.publicKey.getKeyIDs();
  if (!signatures.some((s) => senderIds.some((id) => id.equals(s.keyID)))) {
    return new PmbError('bad_signature', "The message is signed by another key than the sender's", { cause });
  }
  return new PmbError('bad_message', "The sender's signature is invalid", { cause });
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  const sa = new Set(a);
  const sb = new Set(b);
  // Duplicates in a list are refused: a list that names someone twice was not made by PMB.
  return (
    sa.size === a.length && sb.size === b.length && sa.size === sb.size && [...sa].every((x) => sb.has(x))
  );
}
