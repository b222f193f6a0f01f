import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as openpgp from 'openpgp';
import {
  armorPublicKey,
  armorSecretKey,
  fingerprintOf,
  generateIdentity,
  readPublicIdentity,
  unlockIdentity,
} from '../../src/crypto/index.js';
import { randomBytes } from '../../src/protocol/bytes.js';
import { PmbError } from '../../src/protocol/errors.js';

function isPmbError(code: string) {
  return (e: unknown) => {
    assert.ok(e instanceof PmbError, `expected a PmbError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    return true;
  };
}

const userIDs = [{ name: 'test' }];

describe('identities', () => {
  test('a new identity is a v4 EdDSA-legacy key with a Curve25519 encryption subkey', async () => {
    const { identity } = await generateIdentity();
    const key = identity.publicKey;
    assert.equal(key.keyPacket.version, 4);
    assert.deepEqual(key.getAlgorithmInfo(), { algorithm: 'eddsaLegacy', curve: 'ed25519Legacy' });
    assert.equal(key.subkeys.length, 1);
    assert.equal(key.subkeys[0]!.keyPacket.version, 4);
    assert.deepEqual(key.subkeys[0]!.getAlgorithmInfo(), { algorithm: 'ecdh', curve: 'curve25519Legacy' });
    assert.match(identity.fingerprint, /^[0-9a-f]{40}$/);
    assert.equal(fingerprintOf(key), identity.fingerprint);
    assert.deepEqual(key.getUserIDs(), ['pmb']);
    assert.ok(identity.privateKey.isDecrypted());
  });

  test('a "Name <email>" user id keeps both parts', async () => {
    const { identity } = await generateIdentity({ userId: 'Alice <alice@example.test>' });
    assert.deepEqual(identity.publicKey.getUserIDs(), ['Alice <alice@example.test>']);
  });

  test('an identity made with a passphrase unlocks with it, and its armored key is protected', async () => {
    const { identity, secretKeyArmored } = await generateIdentity({ passphrase: 'correct horse' });
    const stored = await openpgp.readPrivateKey({ armoredKey: secretKeyArmored });
    assert.equal(stored.isDecrypted(), false, 'the armored key must be passphrase-protected');
    const unlocked = await unlockIdentity(secretKeyArmored, 'correct horse');
    assert.equal(unlocked.fingerprint, identity.fingerprint);
    assert.ok(unlocked.privateKey.isDecrypted());
    // The identity handed out by generateIdentity stays usable.
    assert.ok(identity.privateKey.isDecrypted());
  });

  test('a wrong passphrase is refused with bad_key', async () => {
    const { secretKeyArmored } = await generateIdentity({ passphrase: 'correct horse' });
    await assert.rejects(unlockIdentity(secretKeyArmored, 'battery staple'), (e: unknown) => {
      isPmbError('bad_key')(e);
      assert.match((e as Error).message, /wrong passphrase/i);
      return true;
    });
  });

  test('a protected key without a passphrase is refused with bad_key', async () => {
    const { secretKeyArmored } = await generateIdentity({ passphrase: 'correct horse' });
    await assert.rejects(unlockIdentity(secretKeyArmored), isPmbError('bad_key'));
  });

  test('an identity made without a passphrase unlocks without one, armored or binary', async () => {
    const { identity, secretKeyArmored } = await generateIdentity();
    assert.equal((await unlockIdentity(secretKeyArmored)).fingerprint, identity.fingerprint);
    assert.equal((await unlockIdentity(identity.privateKey.write())).fingerprint, identity.fingerprint);
  });

  test('armorSecretKey protects a copy and leaves the identity unlocked', async () => {
    const { identity } = await generateIdentity();
    assert.equal(typeof armorSecretKey(identity), 'string');
    const locked = await armorSecretKey(identity, 'pw');
    assert.equal((await unlockIdentity(locked, 'pw')).fingerprint, identity.fingerprint);
    assert.ok(identity.privateKey.isDecrypted());
  });

  test('garbage is not a secret key', async () => {
    await assert.rejects(unlockIdentity(randomBytes(200)), isPmbError('bad_key'));
    await assert.rejects(unlockIdentity('not a key'), isPmbError('bad_key'));
  });
});

describe('reading public keys', () => {
  test('a PMB public key is accepted armored and binary, with the same fingerprint', async () => {
    const { identity } = await generateIdentity();
    const fromBinary = await readPublicIdentity(identity.publicKeyBytes);
    const fromArmor = await readPublicIdentity(armorPublicKey(identity));
    assert.equal(fromBinary.fingerprint, identity.fingerprint);
    assert.equal(fromArmor.fingerprint, identity.fingerprint);
    assert.deepEqual(fromArmor.publicKeyBytes, identity.publicKeyBytes);
  });

  test('a v6 key is refused', async () => {
    const { publicKey } = await openpgp.generateKey({
      type: 'curve25519',
      userIDs,
      format: 'binary',
      config: { v6Keys: true },
    });
    await assert.rejects(readPublicIdentity(publicKey), isPmbError('bad_key'));
  });

  test('a v4 key using the new (non-legacy) Ed25519/X25519 algorithms is refused', async () => {
    const { publicKey } = await openpgp.generateKey({ type: 'curve25519', userIDs, format: 'binary' });
    await assert.rejects(readPublicIdentity(publicKey), isPmbError('bad_key'));
  });

  test('an RSA key is refused', async () => {
    const { publicKey } = await openpgp.generateKey({
      type: 'rsa',
      rsaBits: 2048,
      userIDs,
      format: 'binary',
    });
    await assert.rejects(readPublicIdentity(publicKey), isPmbError('bad_key'));
  });

  test('a NIST P-256 key is refused', async () => {
    const { publicKey } = await openpgp.generateKey({
      type: 'ecc',
      curve: 'nistP256',
      userIDs,
      format: 'binary',
    });
    await assert.rejects(readPublicIdentity(publicKey), isPmbError('bad_key'));
  });

  test('a secret key is refused, armored or binary', async () => {
    const { identity, secretKeyArmored } = await generateIdentity();
    await assert.rejects(readPublicIdentity(secretKeyArmored), (e: unknown) => {
      isPmbError('bad_key')(e);
      assert.match((e as Error).message, /secret/);
      return true;
    });
    await assert.rejects(readPublicIdentity(identity.privateKey.write()), isPmbError('bad_key'));
  });

  test('garbage, empty input and two keys at once are refused', async () => {
    await assert.rejects(readPublicIdentity(randomBytes(300)), isPmbError('bad_key'));
    await assert.rejects(readPublicIdentity(new Uint8Array()), isPmbError('bad_key'));
    await assert.rejects(
      readPublicIdentity('-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nxx\n'),
      isPmbError('bad_key'),
    );
    const a = await generateIdentity();
    const b = await generateIdentity();
    const both = new Uint8Array([...a.identity.publicKeyBytes, ...b.identity.publicKeyBytes]);
    await assert.rejects(readPublicIdentity(both), isPmbError('bad_key'));
  });

  test('a key larger than 8 KiB is refused before parsing', async () => {
    await assert.rejects(readPublicIdentity(new Uint8Array(8 * 1024 + 1)), (e: unknown) => {
      isPmbError('bad_key')(e);
      assert.match((e as Error).message, /larger/);
      return true;
    });
    await assert.rejects(readPublicIdentity('A'.repeat(17 * 1024)), isPmbError('bad_key'));
  });

  test('a revoked key is refused', async () => {
    const { privateKey } = await openpgp.generateKey({
      type: 'ecc',
      curve: 'curve25519Legacy',
      userIDs,
      format: 'object',
    });
    const { publicKey } = await openpgp.revokeKey({ key: privateKey, format: 'binary' });
    await assert.rejects(readPublicIdentity(publicKey), isPmbError('bad_key'));
  });

  test('an expired key is refused', async () => {
    const { publicKey } = await openpgp.generateKey({
      type: 'ecc',
      curve: 'curve25519Legacy',
      userIDs,
      date: new Date(Date.now() - 3600_000),
      keyExpirationTime: 60,
      format: 'binary',
    });
    await assert.rejects(readPublicIdentity(publicKey), isPmbError('bad_key'));
  });

  test('a key without an encryption subkey is refused', async () => {
    const { publicKey } = await openpgp.generateKey({
      type: 'ecc',
      curve: 'curve25519Legacy',
      userIDs,
      subkeys: [],
      format: 'binary',
    });
    await assert.rejects(readPublicIdentity(publicKey), (e: unknown) => {
      isPmbError('bad_key')(e);
      assert.match((e as Error).message, /encryption/);
      return true;
    });
  });
});
