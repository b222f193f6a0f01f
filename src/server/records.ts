import { decodeCbor, encodeCbor } from '../protocol/codec.js';
import type { RecordSignature, SignedRecord } from '../protocol/records.js';
import type { StoredRecord } from '../store/index.js';

export function storedToSigned(r: StoredRecord): SignedRecord {
  return { payload: r.payload, sigs: decodeCbor(r.sigs) as RecordSignature[] };
}

export function encodeSigs(sigs: RecordSignature[]): Uint8Array {
  return encodeCbor(sigs);
}
