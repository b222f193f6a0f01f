import { z } from 'zod';
import { method } from './frames.js';
import { signedRecord } from './records.js';
import { boundedBytes, bytes, domain, uint } from './schemas.js';

/**
 * Server-to-server links (docs/federation.md): the same framing as client connections, over a WebSocket
 * opened with this subprotocol. Both servers prove their keys over one transcript naming both keys and
 * both fresh nonces, so a handshake cannot be replayed or relayed to a third server.
 */
export const S2S_SUBPROTOCOL = 'pmb.s2s.v1.cbor';
export const S2S_VERSIONS = [1] as const;
export const S2S_NONCE_BYTES = 32;

const nonce = boundedBytes(S2S_NONCE_BYTES).refine(
  (b) => b.length === S2S_NONCE_BYTES,
  'a nonce is 32 bytes',
);

export const S2sHello = method('s2s.hello', {
  params: {
    versions: z.array(uint).min(1).max(16),
    /** The connecting server's current server record and its public key. */
    serverRecord: signedRecord,
    publicKey: bytes,
    /** Fresh random bytes of the connecting server. */
    nonce,
  },
  result: {
    version: uint,
    domain,
    serverRecord: signedRecord,
    publicKey: bytes,
    nonce,
    /** The answering server's signature over the transcript (src/federation/handshake.ts). */
    proof: bytes,
  },
  errors: ['unsupported_version', 'bad_record', 'bad_signature', 'wrong_server'],
  auth: false,
  summary: 'Open a server link: exchange server records and nonces; the answering server proves its key.',
});

export const S2sAuth = method('s2s.auth', {
  params: { proof: bytes },
  result: {},
  errors: ['bad_signature'],
  auth: false,
  summary: 'The connecting server proves its key over the same transcript; the link is then open.',
});

export const S2S_METHODS = [S2sHello, S2sAuth] as const;
