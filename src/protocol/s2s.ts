import { z } from 'zod';
import { envelope, method } from './frames.js';
import { signedRecord } from './records.js';
import { boundedBytes, bytes, domain, fingerprint, uint } from './schemas.js';

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

/** Records on a link travel with their subject's public key, so the receiver can verify them. */
export const feedItem = z.object({ record: signedRecord, publicKey: bytes });
export type FeedItemWire = z.infer<typeof feedItem>;
export const S2S_MAX_ITEMS = 500;

export const S2sSync = method('s2s.sync', {
  params: { since: uint, limit: uint.min(1).max(S2S_MAX_ITEMS) },
  result: { items: z.array(feedItem).max(S2S_MAX_ITEMS), next: uint, more: z.boolean() },
  errors: [],
  auth: false,
  summary: 'Pull the records of the peer’s feed after a position (a page; more says whether to ask again).',
});

export const S2sRecords = method('s2s.records', {
  params: { items: z.array(feedItem).min(1).max(S2S_MAX_ITEMS) },
  result: { accepted: uint },
  errors: [],
  auth: false,
  summary: 'Push newly accepted records; the receiver verifies each and answers how many were new to it.',
});

export const S2sRecord = method('s2s.record', {
  params: { subject: fingerprint, since: uint },
  result: { items: z.array(feedItem).max(S2S_MAX_ITEMS) },
  errors: [],
  auth: false,
  summary: 'Fetch the records of one identity with seq above `since`, chain order (fills a gap on demand).',
});

/** Envelopes per s2s.deliver request. */
export const S2S_MAX_ENVELOPES = 100;

export const deliverItem = z.object({
  envelope,
  /** The recipients this server is asked to deliver to: some of envelope.to, or the sender's own copy. */
  to: z.array(fingerprint).min(1).max(64),
});
export type DeliverItemWire = z.infer<typeof deliverItem>;

export const deliverResult = z.object({
  /** held: on disk here (or forwarded on, or held before: a duplicate). refused: never retry it. */
  status: z.enum(['held', 'refused']),
  code: z.string().max(64).optional(),
});

export const S2sDeliver = method('s2s.deliver', {
  params: { items: z.array(deliverItem).min(1).max(S2S_MAX_ENVELOPES) },
  result: { results: z.array(deliverResult).max(S2S_MAX_ENVELOPES) },
  errors: ['storage_full'],
  auth: false,
  summary:
    'Hand over envelopes from the outbox; answered, item by item, once they are on disk at the receiver.',
});

export const S2S_METHODS = [S2sHello, S2sAuth, S2sSync, S2sRecords, S2sRecord, S2sDeliver] as const;
