import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { answersMatch, challengeAnswer, makeChallenge, readChallenge } from '../../src/crypto/index.js';
import { randomBytes, toHex } from '../../src/protocol/bytes.js';
import { PmbError } from '../../src/protocol/errors.js';
import { type Person, people } from './fixtures.js';

let alice: Person;
let mallory: Person;
let server: Person;

before(async () => {
  ({ alice, mallory, bob: server } = await people());
});

function loginFailed(e: unknown): boolean {
  assert.ok(e instanceof PmbError, `expected a PmbError, got ${String(e)}`);
  assert.equal(e.code, 'login_failed', e.message);
  return true;
}

describe('login challenges', () => {
  test('the account key holder reads the secret and both sides compute the same answer', async () => {
    const { secret, encrypted } = await makeChallenge(alice.pub);
    assert.equal(secret.length, 32);
    const read = await readChallenge(alice.me, encrypted);
    assert.equal(toHex(read), toHex(secret));
    const bound = { server: server.me.fingerprint, connection: 'conn-1', expires: Date.now() + 60_000 };
    const expected = await challengeAnswer({ secret, ...bound });
    const answer = await challengeAnswer({ secret: read, ...bound });
    assert.equal(expected.length, 32);
    assert.ok(answersMatch(expected, answer));
  });

  test('two challenges carry different secrets', async () => {
    const a = await makeChallenge(alice.pub);
    const b = await makeChallenge(alice.pub);
    assert.notEqual(toHex(a.secret), toHex(b.secret));
  });

  test('a wrong key cannot read the challenge', async () => {
    const { encrypted } = await makeChallenge(alice.pub);
    await assert.rejects(readChallenge(mallory.me, encrypted), loginFailed);
  });

  test('garbage and oversized challenges fail as login_failed', async () => {
    await assert.rejects(readChallenge(alice.me, randomBytes(100)), loginFailed);
    await assert.rejects(readChallenge(alice.me, new Uint8Array(5000)), loginFailed);
  });

  test('the answer is bound to the server, the connection and the expiry', async () => {
    const secret = randomBytes(32);
    const base = { secret, server: server.me.fingerprint, connection: 'conn-1', expires: 1_700_000_000_000 };
    const good = await challengeAnswer(base);
    const variants = [
      { ...base, server: alice.me.fingerprint },
      { ...base, connection: 'conn-2' },
      { ...base, expires: base.expires + 1 },
      { ...base, secret: randomBytes(32) },
      // Moving bytes between fields must not give the same hash.
      { ...base, server: `${base.server}c`, connection: 'onn-1' },
    ];
    for (const v of variants) assert.equal(answersMatch(good, await challengeAnswer(v)), false);
    assert.equal(answersMatch(good, good.subarray(0, 31)), false);
  });
});
