import * as openpgp from 'openpgp';
import { PmbError } from '../protocol/errors.js';
import {
  KEY_BACKDATE_MS,
  MAX_ARMORED_KEY_CHARS,
  MAX_KEY_BYTES,
  MAX_SECRET_KEY_BYTES,
  pgpConfig,
  verificationDate,
} from './config.js';

/** An identity we can act as: the key is decrypted and ready to sign and decrypt. */
export interface Identity {
  /** v4 fingerprint, lowercase hex: the primary id of the identity. */
  fingerprint: string;
  publicKey: openpgp.PublicKey;
  /** Decrypted; never serialize it except through armorSecretKey. */
  privateKey: openpgp.PrivateKey;
  /** Binary transferable public key, as sent on the wire. */
  publicKeyBytes: Uint8Array;
}

/** Someone else's identity, checked by readPublicIdentity against PMB's key policy. */
export interface PublicIdentity {
  fingerprint: string;
  publicKey: openpgp.PublicKey;
  publicKeyBytes: Uint8Array;
}

/** Lowercase 40-hex v4 fingerprint of a key. */
export function fingerprintOf(key: openpgp.Key): string {
  return key.getFingerprint().toLowerCase();
}

/**
 * A fresh identity: EdDSA (legacy Ed25519) primary key for signing and certifying, ECDH Curve25519
 * subkey for encryption, both v4, which GnuPG 2.2 reads. An empty passphrase means none.
 */
export async function generateIdentity(
  opts: { userId?: string; passphrase?: string } = {},
): Promise<{ identity: Identity; secretKeyArmored: string }> {
  const { privateKey } = await openpgp.generateKey({
    type: 'ecc',
    curve: 'curve25519Legacy',
    userIDs: [userIdOf(opts.userId)],
    date: new Date(Date.now() - KEY_BACKDATE_MS),
    format: 'object',
    config: pgpConfig,
  });
  const identity = identityOf(privateKey);
  return { identity, secretKeyArmored: await armorSecretKey(identity, opts.passphrase) };
}

/** Reads a secret key (armored or binary), decrypting it with the passphrase when it is protected. */
async function readSecretKey(input: string | Uint8Array): Promise<openpgp.PrivateKey> {
  try {
    return typeof input === 'string'
      ? await openpgp.readPrivateKey({ armoredKey: input, config: pgpConfig })
      : await openpgp.readPrivateKey({ binaryKey: input, config: pgpConfig });
  } catch (cause) {
    throw new PmbError('bad_key', 'This is not an OpenPGP secret key', { cause });
  }
}

/** What can be told about a secret key without its passphrase. */
export async function inspectSecretKey(
  input: string | Uint8Array,
): Promise<{ fingerprint: string; locked: boolean; armored: string; publicArmored: string }> {
  const key = await readSecretKey(input);
  return {
    fingerprint: fingerprintOf(key),
    locked: key.getKeys().some((k) => !k.keyPacket.isDecrypted()),
    armored: typeof input === 'string' ? input : key.armor(pgpConfig),
    publicArmored: key.toPublic().armor(pgpConfig),
  };
}

export async function unlockIdentity(
  secretKeyArmoredOrBytes: string | Uint8Array,
  passphrase?: string,
): Promise<Identity> {
  const input = secretKeyArmoredOrBytes;
  const size = typeof input === 'string' ? input.length / 2 : input.length;
  if (size > MAX_SECRET_KEY_BYTES) throw new PmbError('bad_key', 'The secret key is too large');
  let key = await readSecretKey(input);
  // isDecrypted() is true when any part is; every part must be usable.
  const locked = key.getKeys().some((k) => !k.keyPacket.isDecrypted());
  if (locked) {
    if (!passphrase) {
      throw new PmbError(
        'bad_key',
        'The secret key is protected by a passphrase; give the passphrase to unlock it',
      );
    }
    try {
      key = await openpgp.decryptKey({ privateKey: key, passphrase, config: pgpConfig });
    } catch (cause) {
      throw new PmbError('bad_key', 'Wrong passphrase for this secret key', { cause });
    }
  }
  const primary = key.keyPacket;
  if ('isDummy' in primary && primary.isDummy()) {
    throw new PmbError(
      'bad_key',
      'The secret key has no primary secret (a subkey-only export); export the full key',
    );
  }
  await checkKeyPolicy(key);
  return identityOf(key);
}

/**
 * Reads someone's public key and checks PMB's policy: exactly one v4 key, EdDSA-legacy primary,
 * Curve25519 ECDH encryption subkey, not revoked, not expired, no secret material, at most 8 KiB.
 */
export async function readPublicIdentity(bytesOrArmored: Uint8Array | string): Promise<PublicIdentity> {
  const input = bytesOrArmored;
  const tooLarge =
    typeof input === 'string' ? input.length > MAX_ARMORED_KEY_CHARS : input.length > MAX_KEY_BYTES;
  if (tooLarge) throw new PmbError('bad_key', `The public key is larger than ${MAX_KEY_BYTES} bytes`);
  let keys: openpgp.Key[];
  try {
    keys =
      typeof input === 'string'
        ? await openpgp.readKeys({ armoredKeys: input, config: pgpConfig })
        : await openpgp.readKeys({ binaryKeys: input, config: pgpConfig });
  } catch (cause) {
    throw new PmbError('bad_key', 'This is not an OpenPGP public key', { cause });
  }
  const [key] = keys;
  if (!key || keys.length !== 1) throw new PmbError('bad_key', 'Expected exactly one public key');
  const isSecret = (p: unknown) =>
    p instanceof openpgp.SecretKeyPacket || p instanceof openpgp.SecretSubkeyPacket;
  if (key.isPrivate() || key.toPacketList().some(isSecret)) {
    throw new PmbError('bad_key', 'This key contains secret key material; send only the public key');
  }
  const publicKeyBytes = key.write();
  if (publicKeyBytes.length > MAX_KEY_BYTES) {
    throw new PmbError('bad_key', `The public key is larger than ${MAX_KEY_BYTES} bytes`);
  }
  await checkKeyPolicy(key);
  return { fingerprint: fingerprintOf(key), publicKey: key, publicKeyBytes };
}

export function armorPublicKey(identity: PublicIdentity): string {
  return identity.publicKey.armor(pgpConfig);
}

/**
 * The secret key, armored. Without a passphrase argument it is unprotected and returned at once (a server
 * keeps its key in its own database); with one, the key is protected (iterated S2K, AES-256, as GnuPG 2.2
 * reads it) and, since that hashing is async, a promise is returned. An empty passphrase means none.
 * The identity itself stays unlocked either way.
 */
export function armorSecretKey(identity: Identity): string;
export function armorSecretKey(identity: Identity, passphrase: string): Promise<string>;
export function armorSecretKey(identity: Identity, passphrase?: string): string | Promise<string>;
export function armorSecretKey(identity: Identity, passphrase?: string): string | Promise<string> {
  if (passphrase === undefined) return identity.privateKey.armor(pgpConfig);
  if (passphrase === '') return Promise.resolve(identity.privateKey.armor(pgpConfig));
  // encryptKey works on a clone, so identity.privateKey stays decrypted.
  return openpgp
    .encryptKey({ privateKey: identity.privateKey, passphrase, config: pgpConfig })
    .then((locked) => locked.armor(pgpConfig));
}

function identityOf(privateKey: openpgp.PrivateKey): Identity {
  const publicKey = privateKey.toPublic();
  return { fingerprint: fingerprintOf(privateKey), publicKey, privateKey, publicKeyBytes: publicKey.write() };
}

/** "Name <email>" becomes both parts; anything else is a name. OpenPGP.js needs some user id. */
function userIdOf(text: string | undefined): openpgp.UserID {
  if (!text) return { name: 'pmb' };
  const m = /^(.*?)\s*<([^<>\s]+@[^<>\s]+)>$/.exec(text);
  return m ? { name: m[1] ?? '', email: m[2] } : { name: text };
}

/** Algorithm and curve pairs PMB accepts: what GnuPG 2.2 calls ed25519 and cv25519. */
function algorithmAllowed(info: openpgp.AlgorithmInfo): boolean {
  return (
    (info.algorithm === 'eddsaLegacy' && info.curve === 'ed25519Legacy') ||
    (info.algorithm === 'ecdh' && info.curve === 'curve25519Legacy')
  );
}

async function checkKeyPolicy(key: openpgp.Key): Promise<void> {
  const date = verificationDate();
  const parts = key.getKeys();
  if (parts.some((k) => k.keyPacket.version !== 4)) {
    throw new PmbError('bad_key', 'Only v4 OpenPGP keys are accepted (GnuPG 2.2 cannot read v6 keys)');
  }
  const primary = key.getAlgorithmInfo();
  if (primary.algorithm !== 'eddsaLegacy' || primary.curve !== 'ed25519Legacy') {
    throw new PmbError('bad_key', 'The primary key must be EdDSA over Ed25519 (legacy v4 format)');
  }
  if (!parts.every((k) => algorithmAllowed(k.getAlgorithmInfo()))) {
    throw new PmbError('bad_key', 'Subkeys must be Curve25519 ECDH or Ed25519 EdDSA');
  }
  try {
    await key.verifyPrimaryKey(date, undefined, pgpConfig);
  } catch (cause) {
    throw new PmbError(
      'bad_key',
      `The key is not valid (revoked, expired or not self-signed): ${message(cause)}`,
      {
        cause,
      },
    );
  }
  try {
    await key.getEncryptionKey(undefined, date, undefined, pgpConfig);
  } catch (cause) {
    throw new PmbError('bad_key', 'The key has no valid encryption subkey', { cause });
  }
  try {
    await key.getSigningKey(undefined, date, undefined, pgpConfig);
  } catch (cause) {
    throw new PmbError('bad_key', 'The key cannot sign', { cause });
  }
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
