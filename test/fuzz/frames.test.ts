import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import type { PmbClient } from '../../src/client/index.js';
import { challengeAnswer, type Identity, readChallenge, signBytes } from '../../src/crypto/index.js';
import { randomBytes, toHex } from '../../src/protocol/bytes.js';
import { CODECS, encodeCbor } from '../../src/protocol/codec.js';
import { ERROR_CODES } from '../../src/protocol/errors.js';
import { ErrorFrame, METHODS, METHODS_BY_NAME } from '../../src/protocol/frames.js';
import { DEFAULT_LIMITS } from '../../src/protocol/limits.js';
import { RECORD_KINDS } from '../../src/protocol/records.js';
import type { EncodingName } from '../../src/protocol/version.js';
import { type Frame, RawPeer } from '../helpers/raw.js';
import { connectUser, inbox, newIdentity, startServer } from '../helpers/servers.js';
import { type MethodVector, readVector } from '../protocol/examples.js';
import { checkProperty, jsonSafe, type Mutation, mutate, mutationArb, weirdValue } from './fuzz.js';

/*
 * Frame decoders and handlers against a real server, both encodings: random bytes, truncated and oversized
 * frames, deep nesting, and every method's example frame (test/vectors/frames) mutated field by field, sent
 * before hello, after hello and logged in. Each frame must get exactly one typed answer (never `internal`),
 * or the connection is closed with a documented code; a refused frame writes nothing; the server keeps
 * serving a well-behaved client on another connection.
 */

type Server = Awaited<ReturnType<typeof startServer>>;

const MAX_FRAME = 64 * 1024;
const MAX_BODY = 16 * 1024;
/** Close codes a client may see: the ones ERROR_CODES maps to, and 1001 (server shutting down). */
const CLOSE_CODES = new Set<number>([...Object.values(ERROR_CODES).map((e) => e.close), 1001]);
/** Methods whose success writes to the database. */
const WRITERS = new Set(['register', 'send', 'record.publish', 'login.finish']);

type State = 'fresh' | 'hello' | 'login';

/** One WebSocket message to send, resolved with the connection's codec at send time. */
type Wire =
  | { kind: 'value'; value: Record<string, unknown> }
  | { kind: 'mutated'; base: number; mutations: Mutation[] }
  | { kind: 'bytes'; bytes: Uint8Array }
  | { kind: 'text'; text: string }
  | { kind: 'truncated'; base: number; cut: number }
  | { kind: 'edited'; base: number; edits: ByteEdit[] }
  | { kind: 'oversized'; extra: number }
  | { kind: 'deep'; method: string; depth: number; arrays: boolean; field: string }
  | { kind: 'publish'; spec: RecordSpec; mutations: Mutation[] }
  | { kind: 'send'; spec: EnvelopeSpec; mutations: Mutation[] }
  | { kind: 'register'; spec: BindingSpec; mutations: Mutation[] }
  | { kind: 'typed'; type: string; params: Record<string, unknown> };

/** A byte-level edit of an encoded frame, at a fraction of its length. */
interface ByteEdit {
  at: number;
  op: 'set' | 'insert' | 'delete';
  byte: number;
}

/** Who a field names: the logged-in user, the other user, someone unknown here, or not a fingerprint. */
type Who = 'alice' | 'bob' | 'stranger' | 'upper' | 'short';

interface EnvelopeSpec {
  id: string;
  from: Who;
  to: Who[];
  ts: number;
  kind: string;
  bodyBytes: number;
  extra: Record<string, unknown>;
}

interface BindingSpec {
  /** Whose key the binding is for: a fresh identity (pool), or the already registered alice. */
  subject: number | 'alice';
  nick: string;
  domain: string;
  registrar: 'server' | 'other';
  seq: number;
  expiresIn: number;
  publicKey: 'subject' | 'other' | 'garbage';
  signed: boolean;
  invite?: string;
}

interface RecordSpec {
  kind: string;
  seq: 'next' | 'head' | 'old' | 'gap' | 'zero' | number;
  prev: 'right' | 'null' | 'wrong' | 'short' | 'absent';
  ts: unknown;
  expires: unknown;
  body: Record<string, unknown>;
  signer: 'alice' | 'other' | 'none';
  sig: 'valid' | 'garbage' | 'empty';
  extraSigs: number;
}

function tableState(server: Server): Record<string, number> {
  const db = server.context.store.db;
  const out: Record<string, number> = {};
  // record_conflicts is left out: a validly signed fork is refused *and* kept as evidence, by design.
  for (const t of [
    'identities',
    'records',
    'bindings',
    'accounts',
    'devices',
    'messages',
    'domain_keys',
    'feed',
    'outbox',
    'invites',
  ]) {
    out[t] = Number(db.get<{ n: number }>(`SELECT count(*) AS n FROM ${t}`)?.n);
  }
  // Acks prune mailboxes lazily; the autoincrement counter moves only when an entry is added.
  out.mailboxSeq = Number(
    db.get<{ seq: number }>("SELECT seq FROM sqlite_sequence WHERE name = 'mailbox'")?.seq ?? 0,
  );
  return out;
}

/** `{type, id: 20, [field]: <depth levels of arrays or one-key maps around 1>}`, encoded by hand. */
function deepFrame(
  encoding: EncodingName,
  w: { method: string; depth: number; arrays: boolean; field: string },
): Uint8Array | string {
  if (encoding === 'json') {
    const head = JSON.stringify({ type: w.method, id: 20, [w.field]: 0 }).slice(0, -2);
    const open = w.arrays ? '[' : '{"a":';
    const close = w.arrays ? ']' : '}';
    return `${head}${open.repeat(w.depth)}1${close.repeat(w.depth)}}`;
  }
  // The map's last value is 0 (one byte, 0x00): replaced by the nested value.
  const head = encodeCbor({ type: w.method, id: 20, [w.field]: 0 }).subarray(0, -1);
  const level = w.arrays ? [0x81] : [0xa1, 0x61, 0x61];
  const out = new Uint8Array(head.length + level.length * w.depth + 1);
  out.set(head);
  for (let i = 0; i < w.depth; i++) out.set(level, head.length + i * level.length);
  out[out.length - 1] = 0x01;
  return out;
}

function tryUtf8(data: Uint8Array): string | undefined {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(data);
  } catch {
    return undefined;
  }
}

async function rawLogin(peer: RawPeer, server: Server, who: Identity, device: string): Promise<void> {
  const hello = await peer.hello();
  assert.equal(hello.type, 'hello.ok');
  const start = await peer.request({ type: 'login.start', id: 1, fingerprint: who.fingerprint, device });
  assert.equal(start.type, 'login.start.ok', JSON.stringify(start.code));
  const secret = await readChallenge(who, start.challenge as Uint8Array);
  const answer = await challengeAnswer({
    secret,
    server: server.fingerprint,
    connection: hello.connection as string,
    expires: start.expires as number,
  });
  const fin = await peer.request({ type: 'login.finish', id: 2, answer });
  assert.equal(fin.type, 'login.finish.ok', JSON.stringify(fin.code));
  // Take the backlog and acknowledge it, so it is not pushed again at every login.
  const synced = await peer.next((f) => f.type === 'synced');
  if ((synced.seq as number) > 0) await peer.request({ type: 'ack', id: 3, seq: synced.seq as number });
}

describe('fuzz: frames against a real server (cbor and json)', () => {
  let server: Server;
  let alice: Identity;
  let other: Identity;
  /** Identities with no account here (until a fuzzed register gives them one). */
  const pool: Identity[] = [];
  let bob: PmbClient;
  /** Example request frames: the vectors as they are, and the same made to fit this server's users. */
  const bases: Record<string, unknown>[] = [];

  before(async () => {
    server = await startServer({
      limits: { ...DEFAULT_LIMITS, maxFrameBytes: MAX_FRAME, maxBodyBytes: MAX_BODY },
    });
    const a = await connectUser(server, 'alice');
    alice = a.identity;
    bob = await connectUser(server, 'bob');
    other = await newIdentity();
    for (let i = 0; i < 4; i++) pool.push(await newIdentity());
    await a.send('bob@a.test', 'before the fuzz');
    a.close();
    for (const m of METHODS) {
      const v = await readVector<MethodVector>(m.name);
      bases.push(CODECS.json.decode(v.request.json) as Record<string, unknown>);
    }
    const fp = alice.fingerprint;
    bases.push(
      { type: 'login.start', id: 11, fingerprint: fp, device: 'fuzz2' },
      { type: 'lookup', id: 12, query: 'alice@a.test' },
      { type: 'lookup', id: 13, query: fp },
      { type: 'ack', id: 14, seq: 2 },
      {
        type: 'send',
        id: 15,
        envelope: {
          id: 'fz-base-0001',
          from: fp,
          to: [bob.identity.fingerprint],
          ts: Date.now(),
          kind: 'msg',
          bv: 1,
          body: randomBytes(200),
        },
      },
    );
  });
  after(async () => {
    bob?.close();
    await server?.close();
  });

  const recordSpec: fc.Arbitrary<RecordSpec> = fc.record({
    kind: fc.oneof(
      { weight: 3, arbitrary: fc.constantFrom('profile', 'location', 'devices', 'revocation') },
      { weight: 2, arbitrary: fc.constantFrom(...RECORD_KINDS) },
      { weight: 1, arbitrary: fc.constantFrom('bogus', '', 'PROFILE') },
    ),
    seq: fc.oneof(
      { weight: 4, arbitrary: fc.constant('next' as const) },
      {
        weight: 3,
        arbitrary: fc.constantFrom('head', 'old', 'gap', 'zero') as fc.Arbitrary<RecordSpec['seq']>,
      },
      { weight: 1, arbitrary: fc.constantFrom(-1, 2 ** 53, 0.5, 2 ** 32) },
    ),
    prev: fc.oneof(
      { weight: 6, arbitrary: fc.constant('right' as const) },
      {
        weight: 1,
        arbitrary: fc.constantFrom('null', 'wrong', 'short', 'absent') as fc.Arbitrary<RecordSpec['prev']>,
      },
    ),
    ts: fc.oneof(
      { weight: 4, arbitrary: fc.constant(Date.now()) },
      { weight: 1, arbitrary: fc.constantFrom(0, -1, 2 ** 53 - 1, 1.5, Number.NaN, 'now') },
      { weight: 1, arbitrary: weirdValue({ bigint: true }) },
    ),
    expires: fc.oneof(
      { weight: 4, arbitrary: fc.constant(undefined) },
      { weight: 1, arbitrary: fc.constantFrom(1, Date.now() + 3600_000, -5, 'never') },
    ),
    body: fc.oneof(
      fc.constant({}),
      fc.constant({ domain: 'a.test', server: '' }),
      fc.constant({ reason: 'lost' }),
      fc.dictionary(fc.string({ maxLength: 8 }), fc.oneof(fc.string({ maxLength: 20 }), fc.nat()), {
        maxKeys: 4,
      }),
      fc.dictionary(fc.string({ maxLength: 8 }), weirdValue(), { maxKeys: 4 }),
    ),
    signer: fc.constantFrom('alice', 'alice', 'alice', 'other', 'none'),
    sig: fc.constantFrom('valid', 'valid', 'valid', 'garbage', 'empty'),
    extraSigs: fc.oneof(fc.constant(0), fc.nat({ max: 4 })),
  });

  const who: fc.Arbitrary<Who> = fc.oneof(
    { weight: 12, arbitrary: fc.constantFrom('alice', 'bob', 'bob', 'stranger') as fc.Arbitrary<Who> },
    { weight: 1, arbitrary: fc.constantFrom('upper', 'short') as fc.Arbitrary<Who> },
  );
  const messageIdArb = fc.oneof(
    fc.stringMatching(/^[A-Za-z0-9_-]{8,64}$/),
    fc.constantFrom('fz-fixed-0001', 'fz-fixed-0002'),
  );
  const envelopeSpec: fc.Arbitrary<EnvelopeSpec> = fc.record({
    id: messageIdArb,
    from: fc.constantFrom('alice', 'alice', 'alice', 'bob', 'stranger') as fc.Arbitrary<Who>,
    to: fc.oneof(
      { weight: 4, arbitrary: fc.uniqueArray(who, { minLength: 1, maxLength: 3 }) },
      { weight: 1, arbitrary: fc.array(who, { maxLength: 70 }) },
    ),
    ts: fc.oneof(fc.constant(Date.now()), fc.maxSafeNat()),
    kind: fc.oneof(fc.constant('msg'), fc.stringMatching(/^[a-z][a-z0-9.]{0,31}$/)),
    bodyBytes: fc.oneof(fc.nat({ max: 300 }), fc.integer({ min: MAX_BODY - 2, max: MAX_BODY + 2 })),
    extra: fc.dictionary(fc.string({ maxLength: 8 }), weirdValue(), { maxKeys: 2 }),
  });
  /** Mostly the right value, sometimes one of the wrong ones. */
  const mostly = <T>(good: T, ...bad: T[]): fc.Arbitrary<T> =>
    fc.oneof({ weight: 6, arbitrary: fc.constant(good) }, { weight: 1, arbitrary: fc.constantFrom(...bad) });
  const bindingSpec: fc.Arbitrary<BindingSpec> = fc.record(
    {
      subject: fc.oneof(fc.nat({ max: 3 }), fc.constant('alice' as const)),
      nick: fc.oneof(
        { weight: 6, arbitrary: fc.stringMatching(/^[a-z0-9][a-z0-9._-]{1,31}$/) },
        { weight: 1, arbitrary: fc.constantFrom('alice', 'bob', 'a', 'Upper', 'x'.repeat(33), 'sp ace', '') },
      ),
      domain: mostly('a.test', 'b.test', 'A.TEST', ''),
      registrar: mostly<'server' | 'other'>('server', 'other'),
      seq: mostly(1, 2, 0),
      expiresIn: mostly(364 * 86_400_000, 3600_000, 400 * 86_400_000, -1000),
      publicKey: mostly<BindingSpec['publicKey']>('subject', 'other', 'garbage'),
      signed: mostly(true, false),
      invite: fc.string({ maxLength: 10 }),
    },
    { requiredKeys: ['subject', 'nick', 'domain', 'registrar', 'seq', 'expiresIn', 'publicKey', 'signed'] },
  );
  const fewMutations = fc.oneof(
    { weight: 3, arbitrary: fc.constant([] as Mutation[]) },
    { weight: 1, arbitrary: fc.array(mutationArb(), { minLength: 1, maxLength: 1 }) },
  );
  const typed: fc.Arbitrary<Wire> = fc
    .oneof(
      fc.record({
        type: fc.constant('lookup'),
        params: fc.record({
          query: fc.oneof(
            fc.string({ minLength: 1, maxLength: 300 }),
            fc.constantFrom('alice@a.test', 'ALICE@A.TEST', ' bob@a.test ', 'nobody@a.test', 'x@b.test'),
            fc.stringMatching(/^[0-9a-f]{40}$/),
            fc.stringMatching(/^[a-z0-9]{2,8}@[a-z0-9.-]{1,20}$/),
          ),
        }),
      }),
      fc.record({
        type: fc.constant('ack'),
        params: fc.record({ seq: fc.oneof(fc.nat(), fc.maxSafeNat()) }),
      }),
      fc.record({
        type: fc.constant('login.start'),
        params: fc.record(
          {
            fingerprint: fc.oneof(
              fc.stringMatching(/^[0-9a-f]{40}$/),
              fc.constant('$alice'),
              fc.constant('$bob'),
            ),
            device: fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/),
            invite: fc.string({ maxLength: 128 }),
          },
          { requiredKeys: ['fingerprint', 'device'] },
        ),
      }),
      fc.record({
        type: fc.constant('login.finish'),
        params: fc.record({ answer: fc.uint8Array({ maxLength: 64 }) }),
      }),
      fc.record({
        type: fc.constant('hello'),
        params: fc.record(
          {
            versions: fc.array(fc.nat({ max: 5 }), { minLength: 1, maxLength: 16 }),
            agent: fc.string({ maxLength: 100 }),
          },
          { requiredKeys: ['versions'] },
        ),
      }),
      fc.record({ type: fc.constant('ping'), params: fc.constant({}) }),
    )
    .map((r): Wire => ({ kind: 'typed', ...r }));

  const wire: fc.Arbitrary<Wire> = fc.oneof(
    {
      weight: 2,
      arbitrary: fc.uint8Array({ maxLength: 300 }).map((bytes): Wire => ({ kind: 'bytes', bytes })),
    },
    { weight: 1, arbitrary: fc.string({ maxLength: 200 }).map((text): Wire => ({ kind: 'text', text })) },
    {
      weight: 2,
      arbitrary: fc
        .record({ base: fc.nat(), cut: fc.double({ min: 0, max: 1, noNaN: true }) })
        .map((r): Wire => ({ kind: 'truncated', ...r })),
    },
    {
      weight: 1,
      arbitrary: fc.integer({ min: 1, max: 4096 }).map((extra): Wire => ({ kind: 'oversized', extra })),
    },
    {
      // An example frame with a few bytes changed, inserted or removed.
      weight: 3,
      arbitrary: fc
        .record({
          base: fc.nat(),
          edits: fc.array(
            fc.record({
              at: fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }),
              op: fc.constantFrom('set', 'insert', 'delete') as fc.Arbitrary<ByteEdit['op']>,
              byte: fc.oneof(
                fc.nat({ max: 255 }),
                // CBOR heads that change meaning: tags, undefined, break, floats, indefinite lengths.
                fc.constantFrom(0xc0, 0xc1, 0xd8, 0xf7, 0xff, 0xf9, 0xfb, 0x5f, 0x7f, 0x9f, 0xbf, 0x1b),
                // JSON structure.
                fc.constantFrom(0x22, 0x7b, 0x7d, 0x5b, 0x5d, 0x2c, 0x3a, 0x5c),
              ),
            }),
            { minLength: 1, maxLength: 4 },
          ),
        })
        .map((r): Wire => ({ kind: 'edited', ...r })),
    },
    {
      weight: 2,
      arbitrary: fc
        .record({
          method: fc.constantFrom(...METHODS.map((m) => m.name)),
          depth: fc.oneof(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 30_000 })),
          arrays: fc.boolean(),
          field: fc.constantFrom('versions', 'query', 'envelope', 'record', 'extra', 'id'),
        })
        .map((r): Wire => ({ kind: 'deep', ...r })),
    },
    {
      // Any map with a method's type: random fields of random types.
      weight: 2,
      arbitrary: fc
        .record({
          type: fc.oneof(
            fc.constantFrom(...METHODS.map((m) => m.name)),
            fc.constantFrom('deliver', 'synced', 'error', 'hello.ok', 's2s.hello', 's2s.sync', 'toString'),
            fc.string({ maxLength: 20 }),
            weirdValue(),
          ),
          id: weirdValue({ bigint: true }),
          fields: fc.dictionary(fc.string({ maxLength: 10 }), weirdValue({ bigint: true }), { maxKeys: 5 }),
        })
        .map((r): Wire => ({ kind: 'value', value: { ...r.fields, type: r.type, id: r.id } })),
    },
    {
      // A method's example frame with one to four mutations.
      weight: 6,
      arbitrary: fc
        .record({
          base: fc.nat(),
          mutations: fc.array(mutationArb({ bigint: true }), { minLength: 1, maxLength: 4 }),
        })
        .map((r): Wire => ({ kind: 'mutated', ...r })),
    },
    {
      // A record.publish of a record signed (or not) by the logged-in identity.
      weight: 4,
      arbitrary: fc
        .record({ spec: recordSpec, mutations: fewMutations })
        .map((r): Wire => ({ kind: 'publish', ...r })),
    },
    {
      // A send of a well-formed or nearly well-formed envelope.
      weight: 4,
      arbitrary: fc
        .record({ spec: envelopeSpec, mutations: fewMutations })
        .map((r): Wire => ({ kind: 'send', ...r })),
    },
    {
      // A register of a binding built for this server, more or less right.
      weight: 3,
      arbitrary: fc
        .record({ spec: bindingSpec, mutations: fewMutations })
        .map((r): Wire => ({ kind: 'register', ...r })),
    },
    // Every method with params of the right types and random values.
    { weight: 4, arbitrary: typed },
  );

  /** Answers seen, by type and error code (printed with PMB_FUZZ_VERBOSE=1 to judge the generators). */
  const outcomes = new Map<string, number>();
  const headOf = () => server.context.store.identities.head(alice.fingerprint);

  async function publishFrame(spec: RecordSpec, mutations: Mutation[]): Promise<Record<string, unknown>> {
    const head = headOf();
    const headSeq = head?.seq ?? 0;
    const seq =
      typeof spec.seq === 'number'
        ? spec.seq
        : { next: headSeq + 1, head: headSeq, old: 1, gap: headSeq + 3, zero: 0 }[spec.seq];
    const prev = {
      right: head?.hash ?? null,
      null: null,
      wrong: randomBytes(32),
      short: randomBytes(5),
      absent: undefined,
    }[spec.prev];
    const body =
      spec.kind === 'location' && spec.body.server === ''
        ? { domain: 'a.test', server: server.fingerprint } // the only location allowed: home stays here
        : spec.kind === 'location'
          ? { ...spec.body, domain: 'a.test' }
          : spec.body;
    const payload: Record<string, unknown> = {
      v: 1,
      kind: spec.kind,
      subject: alice.fingerprint,
      seq,
      ...(prev === undefined ? {} : { prev }),
      ts: spec.ts,
      ...(spec.expires === undefined ? {} : { expires: spec.expires }),
      body,
    };
    const bytes = encodeCbor(payload);
    const signer = spec.signer === 'other' ? other : alice;
    const sigs: { by: string; sig: Uint8Array }[] = [];
    if (spec.signer !== 'none') {
      sigs.push({
        by: alice.fingerprint,
        sig:
          spec.sig === 'valid'
            ? await signBytes(signer, bytes)
            : spec.sig === 'garbage'
              ? randomBytes(100)
              : new Uint8Array(0),
      });
    }
    for (let i = 0; i < spec.extraSigs; i++) sigs.push({ by: toHex(randomBytes(20)), sig: randomBytes(64) });
    return mutate({ type: 'record.publish', id: 30, record: { payload: bytes, sigs } }, mutations);
  }

  const fingerprintOf = (w: Who): string =>
    ({
      alice: alice.fingerprint,
      bob: bob.identity.fingerprint,
      stranger: other.fingerprint,
      upper: alice.fingerprint.toUpperCase(),
      short: alice.fingerprint.slice(1),
    })[w];

  function sendFrame(spec: EnvelopeSpec, mutations: Mutation[]): Record<string, unknown> {
    const envelope = {
      ...spec.extra,
      id: spec.id,
      from: fingerprintOf(spec.from),
      to: spec.to.map(fingerprintOf),
      ts: spec.ts,
      kind: spec.kind,
      bv: 1,
      body: randomBytes(spec.bodyBytes),
    };
    return mutate({ type: 'send', id: 50, envelope }, mutations);
  }

  async function registerFrame(spec: BindingSpec, mutations: Mutation[]): Promise<Record<string, unknown>> {
    const subject = spec.subject === 'alice' ? alice : (pool[spec.subject] as Identity);
    const head = server.context.store.identities.head(subject.fingerprint);
    const now = Date.now();
    const payload = {
      v: 1,
      kind: 'binding',
      subject: subject.fingerprint,
      seq: spec.seq,
      prev: spec.seq > 1 ? (head?.hash ?? randomBytes(32)) : null,
      ts: now,
      expires: now + spec.expiresIn,
      body: {
        nick: spec.nick,
        domain: spec.domain,
        registrar: spec.registrar === 'server' ? server.fingerprint : other.fingerprint,
      },
    };
    const bytes = encodeCbor(payload);
    const sig = spec.signed ? await signBytes(subject, bytes) : randomBytes(90);
    const publicKey =
      spec.publicKey === 'subject'
        ? subject.publicKeyBytes
        : spec.publicKey === 'other'
          ? other.publicKeyBytes
          : randomBytes(64);
    const frame = {
      type: 'register',
      id: 60,
      binding: { payload: bytes, sigs: [{ by: subject.fingerprint, sig }] },
      publicKey,
      ...(spec.invite === undefined ? {} : { invite: spec.invite }),
    };
    return mutate(frame, mutations);
  }

  interface Case {
    encoding: EncodingName;
    state: State;
    frames: Wire[];
  }
  const caseArb: fc.Arbitrary<Case> = fc.record({
    encoding: fc.constantFrom('cbor', 'json') as fc.Arbitrary<EncodingName>,
    state: fc.constantFrom(
      'fresh',
      'hello',
      'hello',
      'login',
      'login',
      'login',
      'login',
    ) as fc.Arbitrary<State>,
    frames: fc.array(wire, { minLength: 1, maxLength: 4 }),
  });

  async function runCase(c: Case): Promise<void> {
    const peer = await RawPeer.open(server.url, c.encoding);
    const codec = CODECS[c.encoding];
    try {
      if (c.state === 'login') await rawLogin(peer, server, alice, 'fuzz');
      else if (c.state === 'hello') assert.equal((await peer.hello()).type, 'hello.ok');
      // Pushes of the login (backlog, synced) are not answers.
      const isAnswer = (f: Frame) => f.type !== 'deliver' && f.type !== 'synced';
      await new Promise((r) => setTimeout(r, 5));
      peer.frames.splice(0);
      const before = tableState(server);
      let expected = 0;
      /** Frames that might have written something even though no answer said so. */
      let mightWrite = false;
      const sent: unknown[] = [];
      for (const w of c.frames) {
        if (peer.closeInfo || peer.ws.readyState !== peer.ws.OPEN) break;
        let value: Record<string, unknown> | undefined;
        if (w.kind === 'value') value = w.value;
        else if (w.kind === 'deep') {
          // Built as bytes: encoders (cbor-x's included) recurse and cannot write what a hostile peer can.
          const data = deepFrame(c.encoding, w);
          peer.sendRaw(data);
          sent.push(`deep ${w.depth}`);
          expected++;
          continue;
        } else if (w.kind === 'mutated') {
          value = mutate(bases[w.base % bases.length] as Record<string, unknown>, w.mutations);
        } else if (w.kind === 'publish') {
          value = await publishFrame(w.spec, w.mutations);
        } else if (w.kind === 'send') {
          value = sendFrame(w.spec, w.mutations);
        } else if (w.kind === 'register') {
          value = await registerFrame(w.spec, w.mutations);
        } else if (w.kind === 'typed') {
          const params = { ...w.params };
          if (params.fingerprint === '$alice') params.fingerprint = alice.fingerprint;
          if (params.fingerprint === '$bob') params.fingerprint = bob.identity.fingerprint;
          value = { type: w.type, id: 40, ...params };
        }
        if (value !== undefined) {
          const data = codec.encode(c.encoding === 'json' ? jsonSafe(value) : value);
          peer.sendRaw(data);
          sent.push(value);
          const m = typeof value.type === 'string' ? METHODS_BY_NAME.get(value.type) : undefined;
          if (m && WRITERS.has(m.name)) {
            const again = codec.decode(data);
            if (m.request.safeParse(again).success) mightWrite = true;
          }
          expected++;
        } else if (w.kind === 'bytes') {
          peer.sendRaw(w.bytes);
          sent.push(w.bytes);
          expected++;
        } else if (w.kind === 'text') {
          peer.sendRaw(w.text);
          sent.push(w.text);
          expected++;
        } else if (w.kind === 'truncated') {
          const base = bases[w.base % bases.length];
          const full = codec.encode(c.encoding === 'json' ? jsonSafe(base) : base);
          const cut = Math.min(full.length - 1, Math.floor(full.length * w.cut));
          const part = full.slice(0, cut);
          peer.sendRaw(part);
          sent.push(part);
          expected++;
        } else if (w.kind === 'edited') {
          const base = bases[w.base % bases.length];
          const full = codec.encode(c.encoding === 'json' ? jsonSafe(base) : base);
          let bytes = Array.from(typeof full === 'string' ? new TextEncoder().encode(full) : full);
          for (const e of w.edits) {
            const at = Math.floor(e.at * bytes.length);
            if (e.op === 'set') bytes[at] = e.byte;
            else if (e.op === 'insert') bytes = [...bytes.slice(0, at), e.byte, ...bytes.slice(at)];
            else bytes.splice(at, 1);
          }
          const data = new Uint8Array(bytes);
          // JSON goes as text when it still is UTF-8 (else as a binary message, which the server reads too).
          const text = c.encoding === 'json' ? tryUtf8(data) : undefined;
          peer.sendRaw(text ?? data);
          sent.push(data);
          expected++;
        } else if (w.kind === 'oversized') {
          peer.sendRaw(new Uint8Array(MAX_FRAME + w.extra));
          sent.push(`oversized +${w.extra}`);
        }
      }
      const deadline = Date.now() + 15_000;
      while (!peer.closeInfo && peer.frames.filter(isAnswer).length < expected) {
        if (Date.now() > deadline) {
          assert.fail(`${expected} answers expected, got ${JSON.stringify(peer.frames.filter(isAnswer))}`);
        }
        await new Promise((r) => setTimeout(r, 5));
      }
      const answers = peer.frames.filter(isAnswer);
      let written = false;
      for (const f of answers) {
        const k = `${String(f.id)} ${f.type === 'error' ? `error:${String(f.code)}` : f.type}${process.env.PMB_FUZZ_VERBOSE === '2' && f.type === 'error' ? ` ${String(f.message).slice(0, 60)}` : ''}`;
        outcomes.set(k, (outcomes.get(k) ?? 0) + 1);
        if (f.type === 'error') {
          assert.ok(ErrorFrame.schema.safeParse(f).success, `malformed error frame ${JSON.stringify(f)}`);
          assert.ok(Object.hasOwn(ERROR_CODES, f.code as string), `unknown code ${String(f.code)}`);
          assert.notEqual(f.code, 'internal', `internal error: ${String(f.message)}`);
        } else {
          const m = METHODS.find((x) => x.okType === f.type);
          assert.ok(m, `an answer of unknown type ${f.type}`);
          assert.ok(m.response.safeParse(f).success, `malformed ${f.type}`);
          if (WRITERS.has(m.name)) written = true;
        }
      }
      assert.ok(answers.length <= expected, `more answers (${answers.length}) than frames (${expected})`);
      if (peer.closeInfo) {
        assert.ok(CLOSE_CODES.has(peer.closeInfo.code), `closed with ${peer.closeInfo.code}`);
      }
      // A refused frame leaves nothing behind. (A writing frame cut off unanswered by a close may still
      // have gone through: then nothing can be said.)
      const unanswered = answers.length < expected;
      if (!written && !(unanswered && mightWrite)) {
        await new Promise((r) => setTimeout(r, 1));
        assert.deepEqual(tableState(server), before, 'a refused frame changed the database');
      }
    } finally {
      peer.close();
    }
    // The server still serves a well-behaved client on another connection.
    assert.equal(bob.conn.closed, false, 'the well-behaved client was disconnected');
    await bob.ping();
  }

  it('every frame gets one typed answer or a documented close; refused frames write nothing', async () => {
    await checkProperty('frames: decoders and handlers', fc.asyncProperty(caseArb, runCase), { runs: 150 });
    if (process.env.PMB_FUZZ_VERBOSE) console.log([...outcomes].sort((a, b) => b[1] - a[1]));
    // After all that, a conversation still works.
    const box = inbox(bob);
    const a = await connectUser(server, 'alice', { identity: alice, register: false, device: 'after' });
    await a.send('bob@a.test', 'after the fuzz');
    await box.waitFor(1);
    assert.equal(box.messages.at(-1)?.text, 'after the fuzz');
    a.close();
  });
});
