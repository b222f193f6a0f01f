/**
 * A deliberately small, strict CBOR (RFC 8949) reader written independently of cbor-x: it knows only what
 * PMB frames may contain (unsigned and negative integers, byte strings, text strings, arrays, maps with text
 * keys, false/true/null, floats) and refuses everything else: tags (so cbor-x's tag 64..87 typed arrays),
 * undefined, other simple values, indefinite lengths, duplicate or non-text map keys, trailing bytes,
 * invalid UTF-8. If it reads a frame, any CBOR library can.
 */
export class StrictCborError extends Error {
  override readonly name = 'StrictCborError';
}

export interface StrictCborStats {
  /** Floats met (major type 7, additional info 25..27), with their value. */
  floats: number[];
}

export function readStrictCbor(bytes: Uint8Array, stats: StrictCborStats = { floats: [] }): unknown {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 0;
  const utf8 = new TextDecoder('utf-8', { fatal: true });

  const need = (n: number) => {
    if (at + n > bytes.length) throw new StrictCborError(`truncated at byte ${at}`);
  };

  /** The argument of a head: the value itself (ints) or a length. */
  const argument = (info: number): number => {
    if (info < 24) return info;
    if (info === 24) {
      need(1);
      return view.getUint8(at++);
    }
    if (info === 25) {
      need(2);
      at += 2;
      return view.getUint16(at - 2);
    }
    if (info === 26) {
      need(4);
      at += 4;
      return view.getUint32(at - 4);
    }
    if (info === 27) {
      need(8);
      const n = view.getBigUint64(at);
      at += 8;
      if (n > BigInt(Number.MAX_SAFE_INTEGER)) throw new StrictCborError('integer beyond 2^53 - 1');
      return Number(n);
    }
    throw new StrictCborError(
      `additional information ${info} (indefinite length or reserved) at byte ${at - 1}`,
    );
  };

  const item = (depth: number): unknown => {
    if (depth > 64) throw new StrictCborError('nested too deeply');
    need(1);
    const head = view.getUint8(at++);
    const major = head >> 5;
    const info = head & 0x1f;
    switch (major) {
      case 0:
        return argument(info);
      case 1:
        return -1 - argument(info);
      case 2: {
        const n = argument(info);
        need(n);
        at += n;
        return bytes.slice(at - n, at);
      }
      case 3: {
        const n = argument(info);
        need(n);
        at += n;
        try {
          return utf8.decode(bytes.subarray(at - n, at));
        } catch {
          throw new StrictCborError(`invalid UTF-8 in a text string at byte ${at - n}`);
        }
      }
      case 4: {
        const n = argument(info);
        const out: unknown[] = [];
        for (let i = 0; i < n; i++) out.push(item(depth + 1));
        return out;
      }
      case 5: {
        const n = argument(info);
        const out: Record<string, unknown> = Object.create(null);
        for (let i = 0; i < n; i++) {
          const keyAt = at;
          const key = item(depth + 1);
          if (typeof key !== 'string')
            throw new StrictCborError(`map key at byte ${keyAt} is not a text string`);
          if (Object.hasOwn(out, key)) throw new StrictCborError(`duplicate map key "${key}"`);
          out[key] = item(depth + 1);
        }
        return { ...out };
      }
      case 6:
        throw new StrictCborError(`tag at byte ${at - 1} (tags are not used in PMB frames)`);
      default: {
        if (info === 20) return false;
        if (info === 21) return true;
        if (info === 22) return null;
        let value: number;
        if (info === 25) {
          need(2);
          value = half(view.getUint16(at));
          at += 2;
        } else if (info === 26) {
          need(4);
          value = view.getFloat32(at);
          at += 4;
        } else if (info === 27) {
          need(8);
          value = view.getFloat64(at);
          at += 8;
        } else {
          throw new StrictCborError(
            `simple value ${info} at byte ${at - 1} (only false, true, null, floats)`,
          );
        }
        stats.floats.push(value);
        return value;
      }
    }
  };

  const value = item(0);
  if (at !== bytes.length) throw new StrictCborError(`${bytes.length - at} bytes after the item`);
  return value;
}

/** IEEE 754 half precision, as in RFC 8949 appendix D. */
function half(h: number): number {
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  const sign = h & 0x8000 ? -1 : 1;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 31) return mant === 0 ? sign * Number.POSITIVE_INFINITY : Number.NaN;
  return sign * (mant + 1024) * 2 ** (exp - 25);
}
