import * as openpgp from 'openpgp';

/**
 * One OpenPGP.js configuration for every call in src/crypto, snapshotted at load so that code elsewhere
 * changing `openpgp.config` cannot weaken PMB. The choices keep PMB's keys and messages readable by
 * Debian 12's GnuPG 2.2: v4 keys, SEIPDv1 (MDC) without AEAD, iterated-and-salted S2K (no Argon2).
 */
export const pgpConfig: openpgp.Config = {
  ...openpgp.config,
  v6Keys: false,
  aeadProtect: false,
  // Refuse Symmetrically Encrypted Data (no MDC) and never release unauthenticated plaintext.
  allowUnauthenticatedMessages: false,
  allowUnauthenticatedStream: false,
  enforceGrammar: true,
  preferredSymmetricAlgorithm: openpgp.enums.symmetric.aes256,
  preferredHashAlgorithm: openpgp.enums.hash.sha512,
  // Compression before encryption leaks length information and buys little on short messages.
  preferredCompressionAlgorithm: openpgp.enums.compression.uncompressed,
  s2kType: openpgp.enums.s2k.iterated,
  // Bodies from GnuPG arrive compressed: cap what they may inflate to (zip bombs).
  maxDecompressedMessageSize: 1024 * 1024,
  showVersion: false,
  showComment: false,
};

/** Largest public key PMB accepts (binary). Curve25519 keys are well under 1 KiB. */
export const MAX_KEY_BYTES = 8 * 1024;
/** Largest armored public key text accepted before parsing: base64 of MAX_KEY_BYTES plus armor lines. */
export const MAX_ARMORED_KEY_CHARS = 16 * 1024;
/** Largest secret key (binary; armored text may be twice that) accepted by unlockIdentity. */
export const MAX_SECRET_KEY_BYTES = 16 * 1024;
/** Largest message body sealed or opened. */
export const MAX_BODY_BYTES = 256 * 1024;

/**
 * Clocks of home boxes and phones disagree. Keys are created with a creation time this far in the past,
 * so a peer whose clock is behind ours does not see a key "created in the future" (OpenPGP treats such
 * a key as not yet valid).
 */
export const KEY_BACKDATE_MS = 10 * 60_000;
/**
 * Signatures (messages, records) are checked as of now + this much, so one made by a peer whose clock
 * is ahead still verifies. Checking at a later time only makes expiry checks stricter.
 */
export const CLOCK_SKEW_MS = 5 * 60_000;

/** The time signatures and keys are checked at, for a given "now" in ms. */
export function verificationDate(now: number = Date.now()): Date {
  return new Date(now + CLOCK_SKEW_MS);
}
