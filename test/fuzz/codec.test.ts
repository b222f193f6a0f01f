import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { toHex } from '../../src/protocol/bytes.js';
import { CODECS, decodeCanonicalCbor, decodeCbor, encodeCbor } from '../../src/protocol/codec.js';
import { PmbError } from '../../src/protocol/errors.js';
import { plain } from '../helpers/plain.js';
import { readStrictCbor } from '../protocol/strict-cbor.js';
import { checkProperty, setOwn } from './fuzz.js';

/*
 * The codecs on arbitrary frame-shaped values (text, integers up to 2^53 - 1 such as ms timestamps, byte
 * strings, booleans, null, arrays, maps): decode(encode(x)) gives x back in both encodings, the CBOR is
 * plain (an independent strict reader reads it, no floats) and canonical; and decodeCanonicalCbor, which
 * guards every signed byte string, refuses anything written another way and throws nothing but PmbError.
 */

/** Map keys a frame may use. `__proto__` is left out: cbor-x reads it back as `__proto_` (no pollution). */
const key = fc.string({ maxLength: 12 }).filter((k) => k !== '__proto__');

const frameValue: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.string({ maxLength: 30 }),
    fc.string({ unit: 'grapheme', maxLength: 10 }),
    fc.integer(),
    fc.maxSafeInteger(),
    // Timestamps and other uint64 values: above 2^32 they travel as 0x1b + 8 bytes.
    fc.integer({ min: 2 ** 32 - 2, max: Number.MAX_SAFE_INTEGER }),
    fc.boolean(),
    fc.constant(null),
    fc.uint8Array({ maxLength: 40 }),
    fc.array(tie('value'), { maxLength: 5 }),
    fc
      .uniqueArray(fc.tuple(key, tie('value')), { maxLength: 5, selector: ([k]) => k })
      .map((entries) => {
        const out: Record<string, unknown> = {};
        for (const [k, v] of entries) setOwn(out, k, v);
        return out;
      })
      // {"$bytes": "<text>"} is how JSON writes a byte string; PMB never sends such a map (3.3).
      .filter((m) => !(Object.keys(m).length === 1 && typeof m.$bytes === 'string')),
  ),
})).value;

/*
 * A small CBOR writer of our own, so that the same value can be written canonically or with exactly one
 * thing done another way. Its canonical output must be what encodeCbor writes.
 */
type Node =
  | { t: 'int'; v: number }
  | { t: 'bytes'; v: Uint8Array }
  | { t: 'text'; v: string }
  | { t: 'simple'; v: boolean | null }
  | { t: 'array'; items: Node[] }
  | { t: 'map'; entries: [string, Node][] };

/** One way of writing something that the canonical form never uses. */
type Twist =
  | { kind: 'long-head'; width: 1 | 2 | 4 | 8 }
  | { kind: 'float-int'; width: 2 | 4 | 8 }
  | { kind: 'real-float'; value: number }
  | { kind: 'tag'; tag: number }
  | { kind: 'indefinite' }
  | { kind: 'dup-key' }
  | { kind: 'int-key'; key: number }
  | { kind: 'undefined' }
  | { kind: 'simple'; byte: number }
  | { kind: 'bad-utf8' }
  | { kind: 'trailing'; bytes: Uint8Array };

/**
 * Keys for the hand-written maps. Integer-like keys ("0", "42") are left out: a JS object lists them first
 * whatever order they came in, so decodeCanonicalCbor refuses a map that has one after another key, though
 * docs/protocol.md 3.2 keeps keys in the order they came (a known deviation, reported; PMB's own writers
 * never produce such a map, they build it from a JS object too).
 */
const orderedKey = key.filter((k) => !/^(0|[1-9][0-9]*)$/.test(k));

const nodeArb: fc.Arbitrary<Node> = fc.letrec<{ node: Node }>((tie) => ({
  node: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.oneof(fc.integer(), fc.maxSafeInteger()).map((v): Node => ({ t: 'int', v })),
    fc.uint8Array({ maxLength: 30 }).map((v): Node => ({ t: 'bytes', v })),
    fc.string({ maxLength: 30 }).map((v): Node => ({ t: 'text', v })),
    fc.constantFrom(true, false, null).map((v): Node => ({ t: 'simple', v })),
    fc.array(tie('node'), { maxLength: 4 }).map((items): Node => ({ t: 'array', items })),
    fc
      .uniqueArray(fc.tuple(orderedKey, tie('node')), { maxLength: 4, selector: ([k]) => k })
      .map((entries): Node => ({ t: 'map', entries })),
  ),
})).node;

const twistArb: fc.Arbitrary<Twist> = fc.oneof(
  fc.record({
    kind: fc.constant('long-head' as const),
    width: fc.constantFrom(1, 2, 4, 8) as fc.Arbitrary<1>,
  }),
  fc.record({ kind: fc.constant('float-int' as const), width: fc.constantFrom(2, 4, 8) as fc.Arbitrary<2> }),
  fc.record({
    kind: fc.constant('real-float' as const),
    value: fc.oneof(
      fc.double().filter((d) => !Number.isInteger(d)),
      fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 0.5, 2 ** 60),
    ),
  }),
  fc.record({
    kind: fc.constant('tag' as const),
    tag: fc.oneof(
      fc.constantFrom(0, 1, 2, 3, 21, 22, 23, 24, 32, 64, 72, 258, 55799),
      fc.nat({ max: 100_000 }),
    ),
  }),
  fc.constant({ kind: 'indefinite' as const }),
  fc.constant({ kind: 'dup-key' as const }),
  fc.record({ kind: fc.constant('int-key' as const), key: fc.integer({ min: -30, max: 1000 }) }),
  fc.constant({ kind: 'undefined' as const }),
  fc.record({ kind: fc.constant('simple' as const), byte: fc.constantFrom(0xe0, 0xf0, 0xf3, 0xf8, 0xff) }),
  fc.constant({ kind: 'bad-utf8' as const }),
  fc.record({ kind: fc.constant('trailing' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 4 }) }),
);

function head(major: number, arg: number | bigint, width?: 0 | 1 | 2 | 4 | 8): number[] {
  const n = BigInt(arg);
  const w = width ?? (n < 24n ? 0 : n < 0x100n ? 1 : n < 0x10000n ? 2 : n < 0x100000000n ? 4 : 8);
  if (w === 0) return [(major << 5) | Number(n)];
  const info = { 1: 24, 2: 25, 4: 26, 8: 27 }[w];
  const out = [(major << 5) | info];
  for (let i = w - 1; i >= 0; i--) out.push(Number((n >> BigInt(i * 8)) & 0xffn));
  return out;
}

function floatBytes(value: number, width: 2 | 4 | 8): number[] | undefined {
  if (width === 8) {
    const b = new DataView(new ArrayBuffer(8));
    b.setFloat64(0, value);
    return [0xfb, ...new Uint8Array(b.buffer)];
  }
  if (width === 4) {
    if (Math.fround(value) !== value) return undefined;
    const b = new DataView(new ArrayBuffer(4));
    b.setFloat32(0, value);
    return [0xfa, ...new Uint8Array(b.buffer)];
  }
  // Half precision: small integers only (exact up to 2048).
  if (!Number.isInteger(value) || Math.abs(value) > 2048) return undefined;
  const sign = value < 0 || Object.is(value, -0) ? 0x8000 : 0;
  const a = Math.abs(value);
  if (a === 0) return [0xf9, sign >> 8, 0];
  const exp = Math.floor(Math.log2(a));
  const mant = Math.round((a / 2 ** exp - 1) * 1024);
  const half = sign | ((exp + 15) << 10) | mant;
  return [0xf9, half >> 8, half & 0xff];
}

/** Canonical bytes of a node; `twist` applied to the node at index `target` (pre-order) when it can be. */
function write(
  node: Node,
  twist?: { twist: Twist; target: number },
): { bytes: Uint8Array; twisted: boolean } {
  let index = 0;
  let twisted = false;
  const out: number[] = [];
  const text = (s: string) => Array.from(new TextEncoder().encode(s));
  const visit = (n: Node): void => {
    const here = twist !== undefined && index === twist.target;
    index++;
    const t = here ? twist.twist : undefined;
    const apply = () => {
      twisted = true;
    };
    if (t?.kind === 'tag') {
      out.push(...head(6, t.tag));
      apply();
    }
    if (t?.kind === 'undefined') {
      out.push(0xf7);
      apply();
      return;
    }
    if (t?.kind === 'simple') {
      out.push(t.byte, ...(t.byte === 0xf8 ? [0x20] : []));
      apply();
      return;
    }
    if (t?.kind === 'real-float') {
      out.push(...encodeCbor(t.value));
      apply();
      return;
    }
    const width = t?.kind === 'long-head' ? t.width : undefined;
    const argOk = (arg: number) =>
      width !== undefined &&
      (width === 8 || BigInt(arg) < 1n << BigInt(width * 8)) &&
      arg >= (width === 1 ? 0 : 0);
    const headFor = (major: number, arg: number) => {
      // A longer head than needed: a twist only when it really is longer than the shortest.
      if (width !== undefined && argOk(arg) && head(major, arg).length < 1 + width) {
        apply();
        return head(major, arg, width);
      }
      return head(major, arg);
    };
    switch (n.t) {
      case 'int': {
        if (t?.kind === 'float-int') {
          const f = floatBytes(n.v, t.width);
          if (f) {
            out.push(...f);
            apply();
            return;
          }
        }
        out.push(...(n.v >= 0 ? headFor(0, n.v) : headFor(1, -1 - n.v)));
        return;
      }
      case 'simple':
        out.push(n.v === false ? 0xf4 : n.v === true ? 0xf5 : 0xf6);
        return;
      case 'bytes':
      case 'text': {
        const raw = n.t === 'bytes' ? Array.from(n.v) : text(n.v);
        const major = n.t === 'bytes' ? 2 : 3;
        if (t?.kind === 'indefinite') {
          out.push((major << 5) | 31, ...head(major, raw.length), ...raw, 0xff);
          apply();
          return;
        }
        if (t?.kind === 'bad-utf8' && n.t === 'text') {
          out.push(...head(3, raw.length + 1), ...raw, 0xc3);
          apply();
          return;
        }
        out.push(...headFor(major, raw.length), ...raw);
        return;
      }
      case 'array': {
        if (t?.kind === 'indefinite') {
          out.push(0x9f);
          for (const item of n.items) visit(item);
          out.push(0xff);
          apply();
          return;
        }
        out.push(...headFor(4, n.items.length));
        for (const item of n.items) visit(item);
        return;
      }
      case 'map': {
        const entries = [...n.entries];
        if (t?.kind === 'dup-key' && entries.length > 0) {
          entries.push(entries[0] as [string, Node]);
          apply();
        }
        const intKey = t?.kind === 'int-key';
        if (t?.kind === 'indefinite') {
          out.push(0xbf);
          apply();
        } else out.push(...headFor(5, entries.length + (intKey ? 1 : 0)));
        if (intKey) {
          out.push(...(t.key >= 0 ? head(0, t.key) : head(1, -1 - t.key)), 0xf6);
          apply();
        }
        for (const [k, v] of entries) {
          const kb = text(k);
          out.push(...head(3, kb.length), ...kb);
          visit(v);
        }
        if (t?.kind === 'indefinite') out.push(0xff);
        return;
      }
    }
  };
  visit(node);
  if (twist?.twist.kind === 'trailing') {
    out.push(...twist.twist.bytes);
    twisted = true;
  }
  return { bytes: new Uint8Array(out), twisted };
}

function nodeValue(n: Node): unknown {
  switch (n.t) {
    case 'int':
    case 'bytes':
    case 'text':
    case 'simple':
      return n.v;
    case 'array':
      return n.items.map(nodeValue);
    case 'map': {
      const out: Record<string, unknown> = {};
      for (const [k, v] of n.entries) setOwn(out, k, nodeValue(v));
      return out;
    }
  }
}

describe('fuzz: codec', () => {
  it('decode(encode(x)) is x in both encodings; the CBOR is plain and canonical', async () => {
    await checkProperty(
      'codec: round trip',
      fc.property(frameValue, (x) => {
        const frame = { type: 'fuzz', id: 1, x };
        for (const codec of Object.values(CODECS)) {
          const back = codec.decode(codec.encode(frame));
          assert.deepStrictEqual(plain(back), plain(frame), `${codec.name} round trip`);
        }
        const bytes = encodeCbor(frame);
        const stats = { floats: [] as number[] };
        assert.deepStrictEqual(plain(readStrictCbor(bytes, stats)), plain(frame), 'strict reader');
        assert.deepEqual(stats.floats, [], 'integers are written as integers');
        assert.deepEqual(plain(decodeCanonicalCbor(bytes)), plain(frame), 'canonical');
        assert.equal(toHex(encodeCbor(decodeCbor(bytes))), toHex(bytes), 're-encoding is stable');
      }),
      { runs: 200 },
    );
  });

  it('our canonical writer agrees with encodeCbor (so the twisted forms below differ only by the twist)', async () => {
    await checkProperty(
      'codec: reference writer',
      fc.property(nodeArb, (n) => {
        const { bytes } = write(n);
        assert.equal(toHex(bytes), toHex(encodeCbor(nodeValue(n))));
        assert.deepEqual(plain(decodeCanonicalCbor(bytes)), plain(nodeValue(n)));
      }),
      { runs: 200 },
    );
  });

  it('decodeCanonicalCbor refuses every non-canonical form with a PmbError', async () => {
    await checkProperty(
      'codec: canonical refuses',
      fc.property(nodeArb, twistArb, fc.nat(), (n, twist, pick) => {
        let count = 0;
        const countNodes = (x: Node): void => {
          count++;
          if (x.t === 'array') x.items.forEach(countNodes);
          if (x.t === 'map') for (const [, v] of x.entries) countNodes(v);
        };
        countNodes(n);
        const { bytes, twisted } = write(n, { twist, target: pick % count });
        fc.pre(twisted);
        assert.throws(
          () => decodeCanonicalCbor(bytes),
          (err: unknown) => err instanceof PmbError,
          `accepted ${toHex(bytes)} (${twist.kind})`,
        );
      }),
      { runs: 300 },
    );
  });

  it('decodeCanonicalCbor on random and damaged bytes throws nothing but PmbError', async () => {
    const damaged = fc
      .tuple(nodeArb, fc.array(fc.tuple(fc.nat(), fc.nat({ max: 255 })), { minLength: 1, maxLength: 3 }))
      .map(([n, edits]) => {
        const bytes = write(n).bytes;
        for (const [at, b] of edits) if (bytes.length > 0) bytes[at % bytes.length] = b;
        return bytes;
      });
    await checkProperty(
      'codec: canonical never throws otherwise',
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 64 }), damaged), (bytes) => {
        try {
          decodeCanonicalCbor(bytes);
        } catch (err) {
          assert.ok(err instanceof PmbError, `threw ${String(err)}`);
        }
      }),
      { runs: 500 },
    );
  });
});
