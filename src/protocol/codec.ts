import { Decoder, Encoder } from 'cbor-x';
import { fromBase64, toBase64 } from './bytes.js';
import { PmbError } from './errors.js';
import { DEFAULT_ENCODING, type EncodingName, SUBPROTOCOLS } from './version.js';

/** Turns frames into WebSocket messages and back. Decoding only parses; validation is the schema's job. */
export interface Codec {
  readonly name: EncodingName;
  readonly subprotocol: string;
  /** true when frames travel as binary WebSocket messages. */
  readonly binary: boolean;
  encode(value: unknown): Uint8Array | string;
  decode(data: Uint8Array | string): unknown;
}

// Plain CBOR: byte strings as major type 2 (not cbor-x's tag-64 typed arrays), maps as maps, no
// cbor-x record extension, so any CBOR library reads PMB frames.
const cborOptions = {
  tagUint8Array: false,
  useRecords: false,
  mapsAsObjects: true,
  variableMapSize: true,
  structuredClone: false,
  pack: false,
  // 64-bit integers (every ms timestamp) decode as numbers, not BigInts.
  int64AsNumber: true,
} as const;
const cborEncoder = new Encoder(cborOptions);
const cborDecoder = new Decoder(cborOptions);

/** Encode a value as plain CBOR (used for frames, message content and signed record payloads). */
export function encodeCbor(value: unknown): Uint8Array {
  const out = cborEncoder.encode(wideIntsAsBigInt(value));
  // cbor-x may hand back a view of its reusable buffer: copy so callers own what they keep.
  return new Uint8Array(out);
}

/**
 * cbor-x writes integers beyond 32 bits (every ms timestamp) as float64; CBOR has integers up to 64 bits
 * and other libraries expect them. BigInts are written as integers, so wide integers are turned into BigInts
 * on the way out. Objects are copied only where something changes.
 */
function wideIntsAsBigInt(value: unknown): unknown {
  if (typeof value === 'number') {
    return Number.isSafeInteger(value) && (value > 0xffffffff || value < -0x100000000)
      ? BigInt(value)
      : value;
  }
  if (value === null || typeof value !== 'object' || value instanceof Uint8Array) return value;
  if (Array.isArray(value)) {
    let out: unknown[] | undefined;
    value.forEach((v, i) => {
      const w = wideIntsAsBigInt(v);
      if (w !== v) {
        out ??= [...value];
        out[i] = w;
      }
    });
    return out ?? value;
  }
  let out: Record<string, unknown> | undefined;
  for (const [k, v] of Object.entries(value)) {
    const w = wideIntsAsBigInt(v);
    if (w !== v) {
      out ??= { ...(value as Record<string, unknown>) };
      out[k] = w;
    }
  }
  return out ?? value;
}

export function decodeCbor(data: Uint8Array): unknown {
  return cborDecoder.decode(data);
}

/**
 * Decode bytes that were signed (record payloads, message content) and insist they are the one encoding
 * PMB writes for what they mean: re-encoding gives the same bytes. This refuses duplicate map keys, floats
 * standing in for integers, tags and other ways one signed value could be read two ways; and whatever is
 * outside the data model (docs/protocol.md 3.1): floats, tags and undefined, which cbor-x reads back and
 * re-encodes as they came. Anything wrong is a PmbError.
 */
export function decodeCanonicalCbor(data: Uint8Array): unknown {
  let value: unknown;
  try {
    value = decodeCbor(data);
  } catch (cause) {
    throw new PmbError('bad_frame', 'Signed CBOR does not decode', { cause });
  }
  if (!inDataModel(value, 0)) throw new PmbError('bad_frame', 'Signed CBOR holds a value PMB does not use');
  const again = encodeCbor(value);
  if (again.length !== data.length || !again.every((b, i) => b === data[i])) {
    throw new PmbError('bad_frame', 'Signed CBOR is not in canonical form');
  }
  return value;
}

/** Text, integers (safe), booleans, null, byte strings, arrays and plain maps, nested at most 64 deep. */
function inDataModel(value: unknown, depth: number): boolean {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return true;
  if (typeof value === 'number') return Number.isSafeInteger(value);
  if (typeof value !== 'object' || depth > 64) return false;
  if (value instanceof Uint8Array) return true;
  if (Array.isArray(value)) return value.every((v) => inDataModel(v, depth + 1));
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return false;
  return Object.values(value).every((v) => inDataModel(v, depth + 1));
}

export const cborCodec: Codec = {
  name: 'cbor',
  subprotocol: SUBPROTOCOLS.cbor,
  binary: true,
  encode: encodeCbor,
  decode(data) {
    if (typeof data === 'string') throw new PmbError('bad_frame', 'Expected a binary CBOR frame');
    return decodeCbor(data);
  },
};

/** JSON for debugging: byte strings travel as {"$bytes": "<base64>"} (as DAG-JSON does). */
export const jsonCodec: Codec = {
  name: 'json',
  subprotocol: SUBPROTOCOLS.json,
  binary: false,
  encode(value) {
    // `this[key]` is the value before toJSON ran: a Buffer would otherwise arrive as {type, data}.
    return JSON.stringify(value, function (this: Record<string, unknown>, key, v: unknown) {
      const raw = this[key];
      return raw instanceof Uint8Array ? { $bytes: toBase64(raw) } : v;
    });
  },
  decode(data) {
    const text = typeof data === 'string' ? data : new TextDecoder('utf-8', { fatal: true }).decode(data);
    return JSON.parse(text, (_key, v: unknown) => {
      if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
        const keys = Object.keys(v);
        const b = (v as { $bytes?: unknown }).$bytes;
        if (keys.length === 1 && typeof b === 'string') return fromBase64(b);
      }
      return v;
    });
  },
};

export const CODECS: Record<EncodingName, Codec> = { cbor: cborCodec, json: jsonCodec };

export function codecForSubprotocol(subprotocol: string | undefined | null): Codec | undefined {
  if (!subprotocol) return CODECS[DEFAULT_ENCODING];
  return Object.values(CODECS).find((c) => c.subprotocol === subprotocol);
}

/** Depth of nested arrays/maps, to refuse pathological frames before anything walks them. */
export function nestingDepth(value: unknown, limit: number, depth = 0): number {
  if (depth > limit) return depth;
  if (value === null || typeof value !== 'object' || value instanceof Uint8Array) return depth;
  let max = depth + 1;
  for (const v of Object.values(value)) {
    max = Math.max(max, nestingDepth(v, limit, depth + 1));
    if (max > limit) break;
  }
  return max;
}
