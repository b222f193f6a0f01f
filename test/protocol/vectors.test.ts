import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { describe, it } from 'node:test';
import {
  challengeAnswer,
  decodeRecord,
  openMessage,
  type PublicIdentity,
  readChallenge,
  readPublicIdentity,
  unlockIdentity,
  verifyRecord,
} from '../../src/crypto/index.js';
import { fromHex, sha256, toHex } from '../../src/protocol/bytes.js';
import { cborCodec, encodeCbor, jsonCodec } from '../../src/protocol/codec.js';
import { type Envelope, METHODS, PUSHES } from '../../src/protocol/frames.js';
import { bindingBody, locationBody, type SignedRecord, serverBody } from '../../src/protocol/records.js';
import { plain } from '../helpers/plain.js';
import {
  decodeCborHex,
  type EncodedFrame,
  FRAMES_DIR,
  type MethodVector,
  type PushVector,
  readVector,
  schemaForType,
} from './examples.js';
import { readStrictCbor, type StrictCborStats } from './strict-cbor.js';

type Frame = Record<string, unknown> & { type: string; id?: number };

/** Everything one encoded frame must satisfy; returns the frame as the CBOR codec reads it. */
function checkFrame(frame: EncodedFrame, expectedType: string): Frame {
  const bytes = fromHex(frame.cbor);
  const decoded = cborCodec.decode(bytes) as Frame;
  assert.equal(decoded.type, expectedType);
  const schema = schemaForType(expectedType);
  assert.ok(schema, `no schema for ${expectedType}`);
  const parsed = schema.safeParse(decoded);
  assert.ok(
    parsed.success,
    `${expectedType} does not validate: ${parsed.success ? '' : parsed.error.message}`,
  );

  assert.equal(
    toHex(cborCodec.encode(decoded) as Uint8Array),
    frame.cbor,
    'CBOR re-encodes to the same bytes',
  );
  const fromJson = jsonCodec.decode(frame.json);
  assert.deepEqual(plain(fromJson), plain(decoded), 'the JSON and the CBOR hold the same frame');
  assert.equal(jsonCodec.encode(fromJson), frame.json, 'JSON re-encodes to the same text');

  // An independent strict reader reads it to the same value: no tags (typed arrays), no undefined, text keys.
  const stats: StrictCborStats = { floats: [] };
  const strict = readStrictCbor(bytes, stats);
  assert.deepEqual(plain(strict), plain(decoded), 'the strict reader agrees with the codec');
  // Every number in a v1 frame is an integer; where one travels as a float it must be integral.
  for (const f of stats.floats)
    assert.ok(Number.isSafeInteger(f), `non-integral float ${f} in ${expectedType}`);
  return decoded;
}

const methodNames = METHODS.map((m) => m.name);
const pushNames = PUSHES.map((p) => p.name);

describe('frame vectors (test/vectors/frames)', () => {
  it('there is exactly one vector file per method and per push', async () => {
    const files = (await readdir(FRAMES_DIR)).filter((f) => f.endsWith('.json')).sort();
    assert.deepEqual(files, [...methodNames, ...pushNames].map((n) => `${n}.json`).sort());
  });

  for (const m of METHODS) {
    it(`${m.name}: request and ${m.okType} decode, validate, re-encode byte for byte, and agree in both encodings`, async () => {
      const v = await readVector<MethodVector>(m.name);
      assert.equal(v.method, m.name);
      const request = checkFrame(v.request, m.name);
      const response = checkFrame(v.response, m.okType);
      assert.equal(response.id, request.id, 'the response echoes the request id');
    });
  }

  for (const p of PUSHES) {
    it(`${p.name}: every frame decodes, validates, re-encodes byte for byte, and agrees in both encodings`, async () => {
      const v = await readVector<PushVector>(p.name);
      assert.equal(v.push, p.name);
      assert.ok(v.frames.length > 0);
      for (const f of v.frames) checkFrame(f, p.name);
    });
  }

  it('the error vectors show an error answering a request (with its id) and one about the connection (none)', async () => {
    const v = await readVector<PushVector>('error');
    const [answer, connection] = v.frames.map((f) => decodeCborHex(f.cbor) as Frame);
    assert.equal(typeof answer?.id, 'number');
    assert.equal(connection?.id, undefined);
  });

  it('the strict reader refuses what PMB frames must not contain', () => {
    const refused = {
      'tag 64 typed array': 'd8404401020304',
      'tag 1 date': 'c11a514b67b0',
      undefined: 'a16161f7',
      'indefinite-length map': 'bf616101ff',
      'integer map key': 'a10102',
      'duplicate map key': 'a2616101616102',
      'trailing bytes': '0102',
      truncated: 'a26161',
      'invalid UTF-8': '62c328',
    };
    for (const [what, hex] of Object.entries(refused)) {
      assert.throws(() => readStrictCbor(fromHex(hex)), Error, what);
    }
    assert.deepEqual(plain(readStrictCbor(fromHex('a2616142010261628320f5f6')) as unknown), {
      a: { $hex: '0102' },
      b: [-1, true, null],
    });
  });
});

describe('the frame vectors are one consistent conversation', () => {
  it('login: the challenge opens with the test key and the answer binds secret, server, connection, expires', async () => {
    const hello = await readVector<MethodVector>('hello');
    const start = await readVector<MethodVector & { accountSecretKey: string }>('login.start');
    const finish = await readVector<
      MethodVector & {
        derivation: {
          secret: string;
          server: string;
          connection: string;
          expires: number;
          preimage: string;
          answer: string;
        };
      }
    >('login.finish');
    const helloOk = decodeCborHex(hello.response.cbor) as Frame & {
      connection: string;
      server: { fingerprint: string };
    };
    const startOk = decodeCborHex(start.response.cbor) as Frame & { challenge: Uint8Array; expires: number };
    const finishReq = decodeCborHex(finish.request.cbor) as Frame & { answer: Uint8Array };
    const d = finish.derivation;

    const me = await unlockIdentity(start.accountSecretKey);
    const secret = await readChallenge(me, startOk.challenge);
    assert.equal(toHex(secret), d.secret);
    assert.equal(d.server, helloOk.server.fingerprint);
    assert.equal(d.connection, helloOk.connection);
    assert.equal(d.expires, startOk.expires);
    const preimage = encodeCbor(['pmb-login-v1', secret, d.server, d.connection, d.expires]);
    assert.equal(toHex(preimage), d.preimage);
    assert.equal(toHex(await sha256(preimage)), d.answer);
    const answer = await challengeAnswer({
      secret,
      server: d.server,
      connection: d.connection,
      expires: d.expires,
    });
    assert.equal(toHex(answer), d.answer);
    assert.equal(toHex(finishReq.answer), d.answer);
    // The preimage byte by byte, as docs/protocol.md spells it: array(5), text(12), bytes(32), text(40),
    // text(connection), and expires as a CBOR uint64 (1b + 8 bytes), every timestamp being >= 2^32.
    const text = (s: string) => toHex(new TextEncoder().encode(s));
    const uint64 = new DataView(new ArrayBuffer(8));
    uint64.setBigUint64(0, BigInt(d.expires));
    assert.ok(d.connection.length >= 24 && d.connection.length < 256 && d.expires >= 2 ** 32);
    const spelled =
      `85 6c${text('pmb-login-v1')} 5820${d.secret} 7828${text(d.server)}` +
      ` 78${d.connection.length.toString(16)}${text(d.connection)} 1b${toHex(new Uint8Array(uint64.buffer))}`;
    assert.equal(d.preimage, spelled.replaceAll(' ', ''));
  });

  it("register: the response carries the request's payload bytes, signed by the key and by the registrar", async () => {
    const hello = decodeCborHex((await readVector<MethodVector>('hello')).response.cbor) as Frame & {
      server: { publicKey: Uint8Array; fingerprint: string };
    };
    const v = await readVector<MethodVector>('register');
    const req = decodeCborHex(v.request.cbor) as Frame & { binding: SignedRecord; publicKey: Uint8Array };
    const res = decodeCborHex(v.response.cbor) as Frame & { binding: SignedRecord };
    assert.equal(toHex(res.binding.payload), toHex(req.binding.payload));
    const subject = await readPublicIdentity(req.publicKey);
    const registrar = await readPublicIdentity(hello.server.publicKey);
    assert.equal(registrar.fingerprint, hello.server.fingerprint);
    const payload = (await verifyRecord(req.binding, { subject }, { now: Date.now() })).payload;
    const now = payload.ts + 1000;
    const verified = await verifyRecord(
      res.binding,
      { subject, cosigners: [registrar] },
      { now, requireCosigner: true },
    );
    assert.equal(verified.payload.kind, 'binding');
    assert.equal(verified.payload.body.registrar, registrar.fingerprint);
    assert.deepEqual(
      res.binding.sigs.map((s) => s.by),
      [subject.fingerprint, registrar.fingerprint],
    );
  });

  it('lookup: the server records verify with their keys, and vouch for the registrar of the binding', async () => {
    const hello = decodeCborHex((await readVector<MethodVector>('hello')).response.cbor) as Frame & {
      server: { fingerprint: string };
    };
    const res = decodeCborHex((await readVector<MethodVector>('lookup')).response.cbor) as Frame & {
      publicKey: Uint8Array;
      records: SignedRecord[];
      server: string;
      servers: { record: SignedRecord; publicKey: Uint8Array }[];
    };
    const subject = await readPublicIdentity(res.publicKey);
    const binding = res.records.find((r) => decodeRecord(r).kind === 'binding');
    assert.ok(binding, 'the answer holds a binding');
    const now = decodeRecord(binding).ts + 1000;
    const body = bindingBody.parse(decodeRecord(binding).body);
    assert.equal(res.server, body.domain, 'no location record: the server is the binding’s domain');
    const servers = new Map<string, { key: PublicIdentity; domain: string }>();
    for (const item of res.servers) {
      const key = await readPublicIdentity(item.publicKey);
      const verified = await verifyRecord(item.record, { subject: key }, { now });
      assert.equal(verified.payload.kind, 'server');
      servers.set(key.fingerprint, { key, domain: serverBody.parse(verified.payload.body).domain });
    }
    const registrar = servers.get(body.registrar);
    assert.ok(registrar, 'the registrar’s server record comes with the answer');
    assert.equal(registrar.domain, body.domain);
    assert.equal(registrar.key.fingerprint, hello.server.fingerprint);
    await verifyRecord(binding, { subject, cosigners: [registrar.key] }, { now, requireCosigner: true });
  });

  it('record.publish: Alice’s location record extends her chain after the binding of register.json', async () => {
    const hello = decodeCborHex((await readVector<MethodVector>('hello')).response.cbor) as Frame & {
      server: { fingerprint: string };
    };
    const register = decodeCborHex((await readVector<MethodVector>('register')).request.cbor) as Frame & {
      binding: SignedRecord;
      publicKey: Uint8Array;
    };
    const v = await readVector<MethodVector>('record.publish');
    const req = decodeCborHex(v.request.cbor) as Frame & { record: SignedRecord };
    const res = decodeCborHex(v.response.cbor) as Frame & { accepted: boolean };
    const alice = await readPublicIdentity(register.publicKey);
    const payload = decodeRecord(req.record);
    const { payload: verified } = await verifyRecord(
      req.record,
      { subject: alice },
      { now: payload.ts + 1000 },
    );
    assert.equal(verified.kind, 'location');
    assert.equal(verified.subject, alice.fingerprint);
    assert.equal(verified.seq, decodeRecord(register.binding).seq + 1);
    assert.equal(toHex(verified.prev as Uint8Array), toHex(await sha256(register.binding.payload)));
    assert.deepEqual(locationBody.parse(verified.body), {
      domain: bindingBody.parse(decodeRecord(register.binding).body).domain,
      server: hello.server.fingerprint,
    });
    assert.equal(res.accepted, true);
  });

  it('deliver: the envelope Alice sent arrives unchanged, and Bob opens its body with the test key', async () => {
    const send = decodeCborHex((await readVector<MethodVector>('send')).request.cbor) as Frame & {
      envelope: Envelope;
    };
    const v = await readVector<
      PushVector & { recipientSecretKey: string; senderPublicKey: string; content: unknown }
    >('deliver');
    const deliver = decodeCborHex(v.frames[0]?.cbor ?? '') as Frame & { envelope: Envelope };
    assert.deepEqual(plain(deliver.envelope), plain(send.envelope));
    const me = await unlockIdentity(v.recipientSecretKey);
    const from = await readPublicIdentity(v.senderPublicKey);
    assert.equal(from.fingerprint, deliver.envelope.from);
    const content = await openMessage(me, deliver.envelope.body, {
      id: deliver.envelope.id,
      from,
      to: deliver.envelope.to,
      kind: deliver.envelope.kind,
    });
    assert.deepEqual({ ...content }, v.content);
  });
});
