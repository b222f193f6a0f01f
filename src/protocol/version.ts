/** Protocol versions this implementation speaks, newest first. */
export const PROTOCOL_VERSIONS = [1] as const;
export const PROTOCOL_VERSION = 1;

/** WebSocket subprotocols; the encoding of every frame on a connection is fixed by the one chosen. */
export const SUBPROTOCOLS = {
  cbor: 'pmb.v1.cbor',
  json: 'pmb.v1.json',
} as const;
export type EncodingName = keyof typeof SUBPROTOCOLS;
export const DEFAULT_ENCODING: EncodingName = 'cbor';
