import assert from 'node:assert/strict';
import { type Identity, signBytes } from '../../src/crypto/index.js';
import { linkTranscript, proveLink } from '../../src/federation/handshake.js';
import { requestSigningBytes } from '../../src/federation/link.js';
import { randomBytes } from '../../src/protocol/bytes.js';
import { S2S_SUBPROTOCOL } from '../../src/protocol/s2s.js';
import type { PmbServer } from '../../src/server/index.js';
import { type Frame, RawPeer } from './raw.js';

/** Who a raw peer claims to be: a server identity and its server record. */
export interface RawServer {
  identity: Identity;
  record: unknown;
}

/** A raw s2s.hello as `as` to `to`; returns the peer, the answer and our nonce. */
export async function rawHello(
  to: PmbServer,
  as: RawServer,
): Promise<{ peer: RawPeer; ok: Frame; nonce: Uint8Array }> {
  const peer = await RawPeer.open(to.url, 'cbor', S2S_SUBPROTOCOL);
  const nonce = randomBytes(32);
  const ok = await peer.request({
    type: 's2s.hello',
    id: 1,
    versions: [1],
    serverRecord: as.record,
    publicKey: as.identity.publicKeyBytes,
    nonce,
  });
  return { peer, ok, nonce };
}

/**
 * A raw peer that opened a link to `to` as `as` (hello + auth). `request` signs over the link's nonces, as a
 * real server does; tests that forge signatures use `peer` and `nonces` directly.
 */
export async function rawLink(to: PmbServer, as: RawServer) {
  const { peer, ok, nonce } = await rawHello(to, as);
  assert.equal(ok.type, 's2s.hello.ok', JSON.stringify(ok.code));
  const t = linkTranscript({
    initiator: as.identity.fingerprint,
    responder: to.fingerprint,
    initiatorNonce: nonce,
    responderNonce: ok.nonce as Uint8Array,
  });
  const opened = await peer.request({ type: 's2s.auth', id: 2, proof: await proveLink(as.identity, t) });
  assert.equal(opened.type, 's2s.auth.ok');
  const nonces = { initiator: nonce, responder: ok.nonce as Uint8Array };
  let id = 100;
  return {
    peer,
    nonces,
    async request(type: string, params: Record<string, unknown>): Promise<Frame> {
      const n = id++;
      const sig = await signBytes(as.identity, requestSigningBytes(nonces, n, type, params));
      return peer.request({ type, id: n, ...params, sig });
    },
  };
}
