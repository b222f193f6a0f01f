import * as openpgp from 'openpgp';
import { PmbError } from '../protocol/errors.js';
import { pgpConfig, verificationDate } from './config.js';
import type { Identity, PublicIdentity } from './keys.js';

/** Largest armored detached signature read before parsing (an Ed25519 one is about 300 characters). */
const MAX_ARMORED_SIGNATURE_CHARS = 8 * 1024;

/** A binary detached OpenPGP signature over `data` (records, server-to-server proofs). */
export async function signBytes(signer: Identity, data: Uint8Array): Promise<Uint8Array<ArrayBuffer>> {
  const message = await openpgp.createMessage({ binary: data });
  const sig = await openpgp.sign({
    message,
    signingKeys: signer.privateKey,
    detached: true,
    format: 'binary',
    config: pgpConfig,
  });
  return new Uint8Array(sig);
}

/** True when `sig` is a valid binary detached signature over `data` by `key`; false for anything else. */
export async function verifyBytes(
  key: PublicIdentity,
  data: Uint8Array,
  sig: Uint8Array,
  date: Date = verificationDate(),
): Promise<boolean> {
  try {
    const signature = await openpgp.readSignature({ binarySignature: sig, config: pgpConfig });
    const message = await openpgp.createMessage({ binary: data });
    await openpgp.verify({
      message,
      signature,
      verificationKeys: key.publicKey,
      expectSigned: true,
      format: 'binary',
      date,
      config: pgpConfig,
    });
    return true;
  } catch {
    return false;
  }
}

/**
 * An armored detached OpenPGP signature over `data`, as `gpg --armor --detach-sign` makes: for files
 * such as a release manifest, checked with verifyDetachedSignature (or gpg --verify).
 */
export async function signDetachedArmored(signer: Identity, data: Uint8Array): Promise<string> {
  const message = await openpgp.createMessage({ binary: data });
  return openpgp.sign({
    message,
    signingKeys: signer.privateKey,
    detached: true,
    format: 'armored',
    config: pgpConfig,
  });
}

/**
 * Checks an armored detached signature over `data` by one of `trusted`; returns the fingerprint of the key
 * that made it. Anything else (no signature, another key, other bytes) is a bad_signature error.
 */
export async function verifyDetachedSignature(
  data: Uint8Array,
  armoredSignature: string,
  trusted: readonly PublicIdentity[],
): Promise<string> {
  if (armoredSignature.length > MAX_ARMORED_SIGNATURE_CHARS) {
    throw new PmbError('bad_signature', 'The signature file is too large to be a signature');
  }
  let signature: openpgp.Signature;
  try {
    signature = await openpgp.readSignature({ armoredSignature, config: pgpConfig });
  } catch (cause) {
    throw new PmbError('bad_signature', 'The signature file is not an OpenPGP signature', { cause });
  }
  const message = await openpgp.createMessage({ binary: data });
  for (const key of trusted) {
    try {
      const { signatures } = await openpgp.verify({
        message,
        signature,
        verificationKeys: key.publicKey,
        expectSigned: true,
        format: 'binary',
        date: verificationDate(),
        config: pgpConfig,
      });
      // expectSigned throws unless one verifies; check that it is this key's, not merely present.
      for (const s of signatures) {
        if (await s.verified.catch(() => false)) return key.fingerprint;
      }
    } catch {
      // Not by this key (or not valid): try the next trusted key.
    }
  }
  throw new PmbError('bad_signature', 'The signature is not a valid signature by a trusted key');
}
