import { type Identity, type PublicIdentity, signBytes, verifyBytes } from '../crypto/index.js';
import { encodeCbor } from '../protocol/codec.js';

/** What both servers sign when a link opens: both keys, in roles, and both nonces. */
export function linkTranscript(t: {
  initiator: string;
  responder: string;
  initiatorNonce: Uint8Array;
  responderNonce: Uint8Array;
}): Uint8Array {
  return encodeCbor(['pmb-s2s-v1', t.initiator, t.responder, t.initiatorNonce, t.responderNonce]);
}

export function proveLink(server: Identity, transcript: Uint8Array): Promise<Uint8Array> {
  return signBytes(server, transcript);
}

export function checkLinkProof(
  peer: PublicIdentity,
  transcript: Uint8Array,
  proof: Uint8Array,
): Promise<boolean> {
  return verifyBytes(peer, transcript, proof);
}
