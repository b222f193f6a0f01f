import { toHex } from '../../src/protocol/bytes.js';

/** A decoded value with byte strings as { $hex }: they compare by content whatever their class (cbor-x hands out Buffers). */
export function plain(value: unknown): unknown {
  if (value instanceof Uint8Array) return { $hex: toHex(value) };
  if (Array.isArray(value)) return value.map(plain);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]));
  }
  return value;
}
