import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { generateIdentity, type Identity } from '../../src/crypto/index.js';
import { checkLinkProof, linkTranscript, proveLink } from '../../src/federation/handshake.js';
import { randomBytes } from '../../src/protocol/bytes.js';

describe('server link handshake proofs', () => {
  let a: Identity;
  let b: Identity;
  let c: Identity;
  before(async () => {
    [a, b, c] = (await Promise.all([1, 2, 3].map(async () => (await generateIdentity()).identity))) as [
      Identity,
      Identity,
      Identity,
    ];
  });

  it('a proof over the transcript verifies with the prover key only', async () => {
    const t = linkTranscript({
      initiator: a.fingerprint,
      responder: b.fingerprint,
      initiatorNonce: randomBytes(32),
      responderNonce: randomBytes(32),
    });
    const proof = await proveLink(b, t);
    assert.equal(await checkLinkProof(b, t, proof), true);
    assert.equal(await checkLinkProof(c, t, proof), false, 'forged server signature: another key');
  });

  it('replayed handshake: a proof made for other nonces does not verify', async () => {
    const nonceA = randomBytes(32);
    const old = linkTranscript({
      initiator: a.fingerprint,
      responder: b.fingerprint,
      initiatorNonce: nonceA,
      responderNonce: randomBytes(32),
    });
    const proof = await proveLink(b, old);
    const fresh = linkTranscript({
      initiator: a.fingerprint,
      responder: b.fingerprint,
      initiatorNonce: randomBytes(32),
      responderNonce: randomBytes(32),
    });
    assert.equal(await checkLinkProof(b, fresh, proof), false);
  });

  it('relayed handshake: a proof made for a link with server C does not open a link with A', async () => {
    const nA = randomBytes(32);
    const nB = randomBytes(32);
    const forC = linkTranscript({
      initiator: c.fingerprint,
      responder: b.fingerprint,
      initiatorNonce: nA,
      responderNonce: nB,
    });
    const proof = await proveLink(b, forC);
    const forA = linkTranscript({
      initiator: a.fingerprint,
      responder: b.fingerprint,
      initiatorNonce: nA,
      responderNonce: nB,
    });
    assert.equal(await checkLinkProof(b, forA, proof), false);
  });
});
