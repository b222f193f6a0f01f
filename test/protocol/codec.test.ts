import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fromHex, toHex } from '../../src/protocol/bytes.js';
import {
  CODECS,
  cborCodec,
  codecForSubprotocol,
  decodeCanonicalCbor,
  decodeCbor,
  encodeCbor,
  jsonCodec,
  nestingDepth,
} from '../../src/protocol/codec.js';
import { PmbError } from '../../src/protocol/errors.js';
import { Register, Send } from '../../src/protocol/frames.js';
import { DEFAULT_LIMITS } from '../../src/protocol/limits.js';
import { SUBPROTOCOLS } from '../../src/protocol/version.js';
import { plain } from '../helpers/plain.js';
import { readStrictCbor } from './strict-cbor.js';

const fp = (c: string) => c.repeat(40);
const bytes = (...b: number[]) => new Uint8Array(b);

const sendFrame = {
  type: 'send',
  id: 7,
  envelope: {
    id: 'msg-00000001',
    from: fp('a'),
    to: [fp('b'), fp('c')],
    ts: 1_795_594_845_432,
    kind: 'msg',
    bv: 1,
    body: bytes(0xc1, 0x5e, 0x00, 0xff, 0x80),
  },
};

const registerFrame = {
  type: 'register',
  id: 2,
  binding: {
    payload: bytes(0xa1, 0x61, 0x76, 0x01),
    sigs: [
      { by: fp('a'), sig: bytes(1, 2, 3) },
      { by: fp('d'), sig: new Uint8Array(0) },
    ],
  },
  publicKey: new Uint8Array(300).fill(7),
  invite: 'abc',
};

function isBadFrame(e: unknown): boolean {
  return e instanceof PmbError && e.code === 'bad_frame';
}

for (const codec of Object.values(CODECS)) {
  describe(`${codec.name} codec (${codec.subprotocol})`, () => {
    it('round-trips frames carrying byte strings, which come back as Uint8Array and still validate', () => {
      for (const [frame, method] of [
        [sendFrame, Send],
        [registerFrame, Register],
      ] as const) {
        const wire = codec.encode(frame);
        assert.equal(typeof wire === 'string', !codec.binary);
        const back = codec.decode(wire) as typeof frame;
        assert.deepEqual(plain(back), plain(frame));
        assert.ok(method.request.safeParse(back).success);
        const body = 'envelope' in back ? back.envelope.body : back.publicKey;
        assert.ok(body instanceof Uint8Array);
      }
    });

    it('encodes a Buffer exactly like the Uint8Array with the same bytes, and a view as its own bytes only', () => {
      const asBuffer = {
        ...sendFrame,
        envelope: { ...sendFrame.envelope, body: Buffer.from(sendFrame.envelope.body) },
      };
      assert.deepEqual(codec.encode(asBuffer), codec.encode(sendFrame));
      const backing = bytes(9, 9, ...sendFrame.envelope.body, 9);
      const view = backing.subarray(2, 2 + sendFrame.envelope.body.length);
      const asView = { ...sendFrame, envelope: { ...sendFrame.envelope, body: view } };
      assert.deepEqual(codec.encode(asView), codec.encode(sendFrame));
    });

    it('decodes UTF-8 text in strings unchanged', () => {
      const frame = { type: 'error', code: 'bad_request', message: 'Grüße ✓ 😀 \u0000 "quoted"' };
      assert.deepEqual(codec.decode(codec.encode(frame)), frame);
    });
  });
}

describe('CBOR codec', () => {
  it('writes byte strings as major type 2, never as cbor-x typed-array tags', () => {
    assert.equal(toHex(encodeCbor(bytes(1, 2, 3))), '43010203');
    assert.equal(toHex(encodeCbor(Buffer.from([1, 2, 3]))), '43010203');
    assert.equal(toHex(encodeCbor({ b: new Uint8Array(0) })), 'a1616240');
    const encoded = cborCodec.encode(registerFrame) as Uint8Array;
    // The independent strict reader refuses tags, undefined and non-text keys.
    assert.deepEqual(plain(readStrictCbor(encoded)), plain(registerFrame));
  });

  it('writes maps with definite lengths and text keys in insertion order', () => {
    // map(2) text(4) "type" text(4) "ping" text(2) "id" uint(1)
    assert.equal(
      toHex(encodeCbor({ type: 'ping', id: 1 })),
      ['a2', '6474797065', '6470696e67', '626964', '01'].join(''),
    );
  });

  it('hands back bytes the caller owns (not a view of a reused buffer)', () => {
    const a = encodeCbor({ type: 'ping', id: 1 });
    const copy = toHex(a);
    encodeCbor({ type: 'ping', id: 2, pad: 'x'.repeat(100) });
    assert.equal(toHex(a), copy);
  });

  it('refuses malformed CBOR', () => {
    const bad = {
      empty: '',
      truncated: 'a26474797065',
      'truncated byte string': '5a000000ff01',
      'trailing bytes': 'a0a0',
      'break outside indefinite item': 'ff',
      'reserved additional information': '1c',
    };
    for (const [what, hex] of Object.entries(bad)) {
      assert.throws(() => cborCodec.decode(fromHex(hex)), Error, what);
    }
  });

  it('refuses a text WebSocket message with bad_frame', () => {
    assert.throws(() => cborCodec.decode('{"type":"ping","id":1}'), isBadFrame);
  });

  it('decodes a uint64 (major type 0, 8-byte argument) timestamp written by another implementation as a number', () => {
    assert.equal(decodeCbor(fromHex('1b0000018c1234abcd')), 0x18c1234abcd);
  });

  it('writes integers of 2^32 and above (millisecond timestamps) as major type 0', () => {
    assert.equal(toHex(encodeCbor(1_795_594_845_432)), '1b000001a211cafcf8');
  });

  it('refuses duplicate map keys, floats for integers and tags in signed bytes', () => {
    for (const hex of ['a2616101616102', 'a16174fb427a211d12db6000', 'a16162d84043010203']) {
      assert.throws(() => decodeCanonicalCbor(fromHex(hex)), isBadFrame, hex);
    }
    assert.deepEqual(decodeCanonicalCbor(fromHex('a161611b000001a211d12db6')), { a: 1795595251126 });
  });
});

describe('JSON codec', () => {
  it('writes a Buffer as {"$bytes": base64}, not as {"type":"Buffer","data":[...]}', () => {
    const text = jsonCodec.encode({ a: Buffer.from([1, 2, 255]), list: [Buffer.from('hi')] }) as string;
    assert.equal(text, '{"a":{"$bytes":"AQL/"},"list":[{"$bytes":"aGk="}]}');
    assert.doesNotMatch(text, /"Buffer"/);
  });

  it('writes standard padded base64 and reads it back as bytes', () => {
    assert.equal(jsonCodec.encode({ b: bytes(0xfb, 0xff) }), '{"b":{"$bytes":"+/8="}}');
    assert.deepEqual(plain(jsonCodec.decode('{"b":{"$bytes":"+/8="}}')), { b: { $hex: 'fbff' } });
    assert.deepEqual(plain(jsonCodec.decode('{"b":{"$bytes":""}}')), { b: { $hex: '' } });
  });

  it('reads {"$bytes"} only as a map with that single text key', () => {
    assert.deepEqual(jsonCodec.decode('{"b":{"$bytes":"AQI=","x":1}}'), { b: { $bytes: 'AQI=', x: 1 } });
    assert.deepEqual(jsonCodec.decode('{"b":{"$bytes":5}}'), { b: { $bytes: 5 } });
  });

  it('accepts a frame as a binary message holding UTF-8 JSON', () => {
    assert.deepEqual(jsonCodec.decode(new TextEncoder().encode('{"type":"ping","id":1}')), {
      type: 'ping',
      id: 1,
    });
  });

  it('refuses malformed JSON, invalid UTF-8 and invalid base64', () => {
    const bad: (string | Uint8Array)[] = [
      '',
      '{',
      '{"type":"ping",}',
      "{'type':'ping'}",
      '{"type":"ping"} x',
      bytes(0x7b, 0xff, 0x7d),
      '{"b":{"$bytes":"!!!!"}}',
    ];
    for (const input of bad) assert.throws(() => jsonCodec.decode(input), Error, String(input));
  });
});

describe('nestingDepth', () => {
  it('counts maps and arrays, not scalars or byte strings', () => {
    const limit = 16;
    assert.equal(nestingDepth(5, limit), 0);
    assert.equal(nestingDepth('text', limit), 0);
    assert.equal(nestingDepth(null, limit), 0);
    assert.equal(nestingDepth(bytes(1, 2, 3), limit), 0);
    assert.equal(nestingDepth({}, limit), 1);
    assert.equal(nestingDepth({ type: 'ping', id: 1 }, limit), 1);
    assert.equal(nestingDepth({ a: [] }, limit), 2);
    assert.equal(nestingDepth({ a: [1, { b: bytes(1) }], c: {} }, limit), 3);
  });

  it('the frames of v1 sit well inside the default limit', () => {
    assert.equal(nestingDepth(registerFrame, DEFAULT_LIMITS.maxDepth), 4);
    assert.equal(nestingDepth(sendFrame, DEFAULT_LIMITS.maxDepth), 3);
  });

  it('reports a value nested past the limit without walking all of it', () => {
    let deep: unknown = 0;
    for (let i = 0; i < 100_000; i++) deep = [deep];
    const d = nestingDepth(deep, DEFAULT_LIMITS.maxDepth);
    assert.ok(d > DEFAULT_LIMITS.maxDepth);
    assert.ok(d <= DEFAULT_LIMITS.maxDepth + 2);
    let exact: unknown = 0;
    for (let i = 0; i < DEFAULT_LIMITS.maxDepth; i++) exact = { x: exact };
    assert.equal(nestingDepth(exact, DEFAULT_LIMITS.maxDepth), DEFAULT_LIMITS.maxDepth);
  });
});

describe('subprotocols', () => {
  it('select the codec; none offered means CBOR; an unknown one matches nothing', () => {
    assert.equal(codecForSubprotocol(SUBPROTOCOLS.cbor), cborCodec);
    assert.equal(codecForSubprotocol(SUBPROTOCOLS.json), jsonCodec);
    assert.equal(codecForSubprotocol(undefined), cborCodec);
    assert.equal(codecForSubprotocol(''), cborCodec);
    assert.equal(codecForSubprotocol('pmb.v2.cbor'), undefined);
  });
});
