import { z } from 'zod';
import { utf8 } from '../protocol/bytes.js';
import { fingerprint, kind, messageId, timestamp } from '../protocol/schemas.js';

/** Largest text of one message, in UTF-8 bytes. */
export const MAX_TEXT_BYTES = 64 * 1024;
/** Recipients named in one message's content: a sanity bound, servers enforce their own lower limit. */
export const MAX_CONTENT_RECIPIENTS = 1024;

/**
 * The signed inner content of a message body (body version 1): CBOR inside the OpenPGP message. It repeats
 * the envelope's id, from and to under the sender's signature, so a server (or a recipient forwarding the
 * body) cannot relabel it. Unknown fields are kept: later kinds carry more.
 */
export const messageContent = z.looseObject({
  v: z.literal(1),
  id: messageId,
  from: fingerprint,
  to: z.array(fingerprint).min(1).max(MAX_CONTENT_RECIPIENTS),
  /** Sender's clock, ms. */
  ts: timestamp,
  kind,
  text: z
    .string()
    // A string's UTF-8 size is at least its length, so the cheap check comes first.
    .refine((t) => t.length <= MAX_TEXT_BYTES && utf8(t).length <= MAX_TEXT_BYTES, {
      message: `text is at most ${MAX_TEXT_BYTES} bytes`,
    })
    .optional(),
});
export type MessageContent = z.infer<typeof messageContent>;
