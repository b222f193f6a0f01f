import * as openpgp from 'openpgp';
import { equalBytes, randomBytes, sha256 } from '../protocol/bytes.js';
import { encodeCbor } from '../protocol/codec.js';
import { PmbError } from '../protocol/errors.js';
import { pgpConfig } from './config.js';
import type { Identity, PublicIdentity } from './keys.js';

const SECRET_BYTES = 32;
/** A challenge is 32 bytes in one PKESK + SEIPD: a few hundred bytes. Anything much larger is not ours. */
const MAX_CHALLENGE_BYTES = 4096;

/** Server side: 32 fresh random bytes, and the same encrypted to the account key. */
export async function makeChallenge(
  account: PublicIdentity,
): Promise<{ secret: Uint8Array; encrypted: Uint8Array }> {
  const secret = randomBytes(SECRET_BYTES);
  const message = await openpgp.createMessage({ binary: secret });
  try {
    const encrypted = await openpgp.encrypt({
      message,
      encryptionKeys: account.publicKey,
      format: 'binary',
      config: pgpConfig,
    });
    return { secret, encrypted };
  } catch (cause) {
    throw new PmbError('bad_key', 'Cannot encrypt to the account key', { cause });
  }
}

/** Client side: the secret inside a challenge. Only the holder of the account key gets it. */
export async function readChallenge(me: Identity, encrypted: Uint8Array): Promise<Uint8Array> {
  if (encrypted.length > MAX_CHALLENGE_BYTES)
    throw new PmbError('login_failed', 'The login challenge is too large');
  let data: Uint8Array;
  try {
    const message = await openpgp.readMessage({ binaryMessage: encrypted, config: pgpConfig });
    ({ data } = await openpgp.decrypt({
      message,
      decryptionKeys: me.privateKey,
      format: 'binary',
      config: pgpConfig,
    }));
  } catch (cause) {
    throw new PmbError('login_failed', 'The login challenge cannot be decrypted with this key', { cause });
  }
  if (data.length !== SECRET_BYTES) throw new PmbError('login_failed', 'The login challenge is malformed');
  return data;
}

/**
 * The login answer: SHA-256 over CBOR ["pmb-login-v1", secret, server, connection, expires]. Naming the
 * server and the connection (as NIP-42 names the relay) makes an answer useless anywhere else; CBOR keeps
 * the fields apart, so no two different inputs hash the same bytes.
 */
export function challengeAnswer(a: {
  secret: Uint8Array;
  server: string;
  connection: string;
  expires: number;
}): Promise<Uint8Array> {
  return sha256(encodeCbor(['pmb-login-v1', a.secret, a.server, a.connection, a.expires]));
}

/** Constant-time comparison of two answers. */
export function answersMatch(a: Uint8Array, b: Uint8Array): boolean {
  return equalBytes(a, b);
}
