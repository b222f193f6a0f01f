import { encodeCbor } from '../protocol/codec.js';

/**
 * CBOR of a map without its undefined fields: `{ expires: undefined }` would otherwise be encoded as
 * CBOR `undefined`, which other CBOR libraries and zod's optional fields treat differently from absence.
 * Field order is kept as given, so the bytes are what the caller wrote.
 */
export function encodeMap(value: Record<string, unknown>): Uint8Array {
  const defined: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) if (v !== undefined) defined[k] = v;
  return encodeCbor(defined);
}
