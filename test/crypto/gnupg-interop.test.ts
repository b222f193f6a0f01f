import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { armorPublicKey, armorSecretKey, openMessage, sealMessage } from '../../src/crypto/index.js';
import { toHex } from '../../src/protocol/bytes.js';
import { encodeCbor } from '../../src/protocol/codec.js';
import { chat, envelopeOf, type Person, people } from './fixtures.js';
import { GnuPG } from './gnupg.js';

let alice: Person;
let bob: Person;
let gpg: GnuPG;

before(async () => {
  ({ alice, bob } = await people());
  gpg = await GnuPG.create();
});

after(async () => {
  await gpg?.close();
});

/** gpg 2.2 prints fingerprints in uppercase. */
function upper(fpr: string): string {
  return fpr.toUpperCase();
}

describe('GnuPG 2.2 interop', () => {
  test('gpg imports a PMB public key as an ed25519 key with a cv25519 encryption subkey', async () => {
    await gpg.ok(['--import'], armorPublicKey(alice.me));
    const { stdout } = await gpg.ok(['--with-colons', '--list-keys', alice.me.fingerprint]);
    const lines = new TextDecoder().decode(stdout).split('\n');
    const pub = lines.find((l) => l.startsWith('pub:'))?.split(':');
    const sub = lines.find((l) => l.startsWith('sub:'))?.split(':');
    const fpr = lines.find((l) => l.startsWith('fpr:'))?.split(':');
    assert.equal(fpr?.[9], upper(alice.me.fingerprint));
    assert.equal(pub?.[3], '22', 'primary: EdDSA');
    assert.equal(pub?.[16], 'ed25519');
    assert.equal(sub?.[3], '18', 'subkey: ECDH');
    assert.equal(sub?.[16], 'cv25519');
  });

  test('a body sealed by PMB is decrypted and verified by gpg --decrypt', async () => {
    // Bob's secret key, protected as PMB stores it, and alice's public key.
    await gpg.ok(['--passphrase', 'bob-pw', '--import'], await armorSecretKey(bob.me, 'bob-pw'));
    await gpg.ok(['--import'], armorPublicKey(alice.me));

    const content = chat(alice, [bob], 'from pmb to gpg');
    const body = await sealMessage(alice.me, [bob.pub], content);
    const r = await gpg.run(['--passphrase', 'bob-pw', '--trust-model', 'always', '--decrypt'], body);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(toHex(r.stdout), toHex(encodeCbor(content)), 'the plaintext is the CBOR content');

    const goodsig = r.status.find((l) => l.startsWith('GOODSIG '));
    assert.ok(goodsig, `no GOODSIG in:\n${r.stderr}`);
    assert.equal(goodsig.split(' ')[1], upper(alice.me.fingerprint).slice(-16));
    const validsig = r.status.find((l) => l.startsWith('VALIDSIG '))?.split(' ');
    assert.ok(validsig, `no VALIDSIG in:\n${r.stderr}`);
    assert.equal(validsig[1], upper(alice.me.fingerprint), 'signed by the key');
    assert.equal(validsig.at(-1), upper(alice.me.fingerprint), 'of the primary key');
    assert.ok(r.status.includes('DECRYPTION_OKAY'));
    // SEIPDv1 with MDC: gpg 2.2 reports the integrity check it made.
    assert.ok(r.status.includes('GOODMDC'), `no GOODMDC in:\n${r.stderr}`);
  });

  test('a body made by gpg --sign --encrypt over PMB content is accepted by openMessage', async () => {
    await gpg.ok(['--passphrase', 'alice-pw', '--import'], await armorSecretKey(alice.me, 'alice-pw'));
    await gpg.ok(['--import'], armorPublicKey(bob.me));

    const content = chat(alice, [bob], 'from gpg to pmb');
    const { stdout: body } = await gpg.ok(
      [
        '--passphrase',
        'alice-pw',
        '--trust-model',
        'always',
        '--local-user',
        alice.me.fingerprint,
        '-r',
        bob.me.fingerprint,
        '-r',
        alice.me.fingerprint,
        '--sign',
        '--encrypt',
      ],
      encodeCbor(content),
    );
    assert.deepEqual(await openMessage(bob.me, body, envelopeOf(content, alice)), content);
    assert.deepEqual(
      await openMessage(alice.me, body, envelopeOf(content, alice)),
      content,
      "alice's own copy",
    );
  });
});
