import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import type { PmbClient } from '../../src/client/index.js';
import { cosignRecord, createRecord, type Identity, recordHash, signBytes } from '../../src/crypto/index.js';
import { chainItems } from '../../src/federation/gossip.js';
import { requestSigningBytes } from '../../src/federation/link.js';
import { randomBytes, toHex } from '../../src/protocol/bytes.js';
import { cborCodec } from '../../src/protocol/codec.js';
import { ERROR_CODES } from '../../src/protocol/errors.js';
import type { Envelope } from '../../src/protocol/frames.js';
import { BINDING_TTL_MS, type SignedRecord } from '../../src/protocol/records.js';
import { type FeedItemWire, S2S_METHODS } from '../../src/protocol/s2s.js';
import type { PmbServer } from '../../src/server/index.js';
import { storedToSigned } from '../../src/store/index.js';
import { startNetwork, type TestNetwork } from '../helpers/network.js';
import type { Frame, RawPeer } from '../helpers/raw.js';
import { rawLink } from '../helpers/raw-link.js';
import { connectUser, inbox, newIdentity } from '../helpers/servers.js';
import { until } from '../helpers/wait.js';
import { checkProperty, cloneTree, type Mutation, mutate, mutationArb, weirdValue } from './fuzz.js';

/*
 * A server link under fuzz: a raw peer that opened an authenticated link to s1 as s3 (its real key and
 * server record) sends random and mutated s2s frames: s2s.records with forged, tampered and malformed
 * items, s2s.deliver with mutated envelopes and targets, s2s.sync and s2s.record with out-of-range params,
 * requests unsigned or signed wrongly, undecodable bytes. s1 must answer each with a typed error or a
 * result that refuses the item, never accept an invalid record (no feed entry, no identity, nothing passed
 * on to s2), store no refused envelope, and keep serving its honest peer s2 (and the raw link, or a new one).
 */

/** Close codes a peer may see on a link: those of ERROR_CODES, a replaced/closed link, shutdown. */
const CLOSE_CODES = new Set<number>([...Object.values(ERROR_CODES).map((e) => e.close), 1000, 1001]);

type RecordDefect =
  | 'held' // a record s1 holds already: any still-valid variant is a duplicate
  | 'fresh-no-cosig'
  | 'fresh-wrong-cosig'
  | 'fresh-wrong-subject-key'
  | 'fresh-expired'
  | 'fresh-bad-body'
  | 'fork'
  | 'gap'
  | 'garbage';

interface ItemSpec {
  defect: RecordDefect;
  pick: number;
  mutations: Mutation[];
  edits: [number, number][];
}

type Req =
  | { kind: 'records'; items: ItemSpec[] }
  | {
      kind: 'deliver';
      items: { mutations: Mutation[]; to: ('alice' | 'bob' | 'carol' | 'stranger' | 'junk')[] }[];
    }
  | { kind: 'sync'; since: unknown; limit: unknown }
  | { kind: 'record'; subject: unknown; since: unknown }
  | { kind: 'random'; type: string; params: Record<string, unknown> }
  | {
      kind: 'badsig';
      how: 'none' | 'garbage' | 'other-params' | 'other-id' | 'other-key' | 'not-bytes';
      type: string;
    }
  | { kind: 'bytes'; bytes: Uint8Array }
  | { kind: 'frame'; frame: Record<string, unknown> };

describe('fuzz: server link (raw peer as s3 -> s1, honest s2 linked to s1)', () => {
  let net: TestNetwork;
  let s1: PmbServer;
  let s2: PmbServer;
  let s3: PmbServer;
  let alice: PmbClient;
  let bob: PmbClient;
  let carol: Identity;
  let stranger: Identity;
  let base: Envelope;
  /** Records s1 holds (and the keys of their subjects). */
  const held: FeedItemWire[] = [];
  let link: Awaited<ReturnType<typeof rawLink>> | undefined;
  let nextId = 10_000_000;

  const counts = (s: PmbServer) => {
    const db = s.context.store.db;
    const n = (t: string) => Number(db.get<{ n: number }>(`SELECT count(*) AS n FROM ${t}`)?.n);
    return {
      feed: s.context.store.identities.feedHead(),
      identities: n('identities'),
      records: n('records'),
      bindings: n('bindings'),
      domainKeys: n('domain_keys'),
      messages: n('messages'),
      outbox: n('outbox'),
      mailboxSeq: Number(
        db.get<{ seq: number }>("SELECT seq FROM sqlite_sequence WHERE name = 'mailbox'")?.seq ?? 0,
      ),
    };
  };

  /** Answer what s1 asks the raw peer (its pull, gap fills), honestly from s3's store. */
  function serve(peer: RawPeer): void {
    peer.ws.on('message', (data: Buffer) => {
      let f: Frame;
      try {
        f = cborCodec.decode(new Uint8Array(data)) as Frame;
      } catch {
        return;
      }
      if (typeof f.id !== 'number' || f.type === 'error' || f.type.endsWith('.ok')) return;
      const answer = (result: Record<string, unknown>) =>
        peer.send({ type: `${f.type}.ok`, id: f.id, ...result });
      if (f.type === 's2s.sync') answer({ items: [], next: f.since, more: false });
      else if (f.type === 's2s.record')
        answer({ items: chainItems(s3.context, f.subject as string, f.since as number) });
      else if (f.type === 's2s.records') answer({ accepted: 0 });
      else if (f.type === 's2s.deliver') {
        answer({ results: (f.items as unknown[]).map(() => ({ status: 'refused', code: 'forbidden' })) });
      }
    });
  }

  async function openLink(): Promise<NonNullable<typeof link>> {
    const l = await rawLink(s1, { identity: s3.context.identity, record: s3.context.serverRecord });
    serve(l.peer);
    link = l;
    return l;
  }

  async function signedRequest(
    l: NonNullable<typeof link>,
    type: string,
    params: Record<string, unknown>,
    sig?: unknown,
  ): Promise<Frame | undefined> {
    const id = nextId++;
    const frame: Record<string, unknown> = { ...params, type, id };
    // Signed over the params as the receiver decodes them (CBOR does not carry undefined in a map the same
    // way, cbor-x renames __proto__, ...): a mutation should meet the handler, not the signature check.
    const {
      type: _t,
      id: _i,
      sig: _s,
      ...seen
    } = cborCodec.decode(cborCodec.encode(frame)) as Record<string, unknown>;
    const s =
      sig === undefined
        ? await signBytes(s3.context.identity, requestSigningBytes(l.nonces, id, type, seen))
        : sig;
    if (s !== null) frame.sig = s;
    else delete frame.sig;
    l.peer.send(frame);
    return waitAnswer(l.peer, id);
  }

  async function waitAnswer(peer: RawPeer, id: number): Promise<Frame | undefined> {
    try {
      return await peer.next((f) => f.id === id && (f.type === 'error' || f.type.endsWith('.ok')), 20_000);
    } catch (err) {
      if (peer.closeInfo) return undefined;
      throw err;
    }
  }

  before(async () => {
    net = await startNetwork(3, { links: { backoff: { initialMs: 50, maxMs: 400 } } });
    [s1, s2, s3] = net.servers as [PmbServer, PmbServer, PmbServer];
    await s1.context.links.connect('s2.test');
    alice = await connectUser(s1, 'alice');
    bob = await connectUser(s2, 'bob');
    const c = await connectUser(s3, 'carol');
    carol = c.identity;
    stranger = await newIdentity();
    base = await c.seal([alice.identity], 'from carol over the fuzzed link');
    c.close();
    const known = (s: PmbServer, fp: string) => s.context.store.identities.publicKey(fp) !== undefined;
    await until(
      () => known(s1, bob.identity.fingerprint) && known(s2, alice.identity.fingerprint),
      10_000,
      'gossip',
    );
    // s1 learns carol (and s3's server record) from the raw peer, honestly.
    const l = await openLink();
    const res = await signedRequest(l, 's2s.records', {
      items: chainItems(s3.context, carol.fingerprint, 0),
    });
    assert.equal(res?.type, 's2s.records.ok', JSON.stringify(res));
    assert.ok(known(s1, carol.fingerprint));
    // ... and passes them on to s2: let that settle before measuring anything.
    await until(() => known(s2, carol.fingerprint), 10_000, 's2 to learn carol');
    await until(
      () => s2.context.store.identities.feedHead() === s1.context.store.identities.feedHead(),
      10_000,
      'feeds',
    );
    for (const fp of [
      alice.identity.fingerprint,
      bob.identity.fingerprint,
      carol.fingerprint,
      s2.fingerprint,
    ]) {
      const key = s1.context.store.identities.publicKey(fp) as Uint8Array;
      for (const r of s1.context.store.identities.records(fp))
        held.push({ record: storedToSigned(r), publicKey: key });
    }
  });
  after(async () => {
    link?.peer.close();
    alice?.close();
    bob?.close();
    await net?.close();
  });

  /** An item whose record s1 must refuse (or already holds), built for a defect. */
  async function item(spec: ItemSpec): Promise<Record<string, unknown>> {
    const now = Date.now();
    const fresh = await newIdentity();
    const binding = (who: Identity, over: Partial<Parameters<typeof createRecord>[1]> = {}) =>
      createRecord(who, {
        kind: 'binding',
        subject: who.fingerprint,
        seq: 1,
        prev: null,
        ts: now,
        expires: now + BINDING_TTL_MS,
        body: { nick: `fz${spec.pick % 1000}`, domain: 's1.test', registrar: s1.fingerprint },
        ...over,
      });
    let it: { record: SignedRecord | Record<string, unknown>; publicKey: Uint8Array };
    switch (spec.defect) {
      case 'held':
        it = cloneTree(held[spec.pick % held.length] as FeedItemWire);
        break;
      case 'fresh-no-cosig':
        it = { record: await binding(fresh), publicKey: fresh.publicKeyBytes };
        break;
      case 'fresh-wrong-cosig':
        it = { record: await cosignRecord(stranger, await binding(fresh)), publicKey: fresh.publicKeyBytes };
        break;
      case 'fresh-wrong-subject-key': {
        const r = await binding(fresh);
        it = {
          record: {
            payload: r.payload,
            sigs: [{ by: fresh.fingerprint, sig: (await binding(stranger)).sigs[0]?.sig }],
          },
          publicKey: fresh.publicKeyBytes,
        };
        break;
      }
      case 'fresh-expired':
        it = {
          record: await createRecord(fresh, {
            kind: 'profile',
            subject: fresh.fingerprint,
            seq: 1,
            prev: null,
            ts: now - 10_000,
            expires: now - 5000,
            body: {},
          }),
          publicKey: fresh.publicKeyBytes,
        };
        break;
      case 'fresh-bad-body':
        it = {
          record: await createRecord(fresh, {
            kind: 'location',
            subject: fresh.fingerprint,
            seq: 1,
            prev: null,
            ts: now,
            body: { domain: 's1.test', server: s2.fingerprint },
          }),
          publicKey: fresh.publicKeyBytes,
        };
        break;
      case 'fork':
        // Another seq 1 for carol, validly signed: a fork, refused (and kept as evidence).
        it = {
          record: await createRecord(carol, {
            kind: 'profile',
            subject: carol.fingerprint,
            seq: 1,
            prev: null,
            ts: now,
            body: { n: spec.pick },
          }),
          publicKey: carol.publicKeyBytes,
        };
        break;
      case 'gap': {
        // carol's seq 3 (s1 holds seq 1, nobody has seq 2): s1 asks the peer, which has nothing to give.
        const head = storedToSigned(s1.context.store.identities.records(carol.fingerprint)[0] as never);
        it = {
          record: await createRecord(carol, {
            kind: 'profile',
            subject: carol.fingerprint,
            seq: 3,
            prev: await recordHash(head),
            ts: now,
            body: {},
          }),
          publicKey: carol.publicKeyBytes,
        };
        break;
      }
      case 'garbage':
        it = {
          record: {
            payload: randomBytes(spec.pick % 300),
            sigs: [{ by: toHex(randomBytes(20)), sig: randomBytes(64) }],
          },
          publicKey: randomBytes(spec.pick % 200),
        };
        break;
    }
    const out = mutate(it as unknown as Record<string, unknown>, spec.mutations);
    const record = out.record as { payload?: unknown } | undefined;
    if (record && record.payload instanceof Uint8Array && spec.edits.length > 0) {
      const p = new Uint8Array(record.payload);
      for (const [at, b] of spec.edits) if (p.length > 0) p[at % p.length] = b;
      record.payload = p;
    }
    return out;
  }

  const who = fc.constantFrom('alice', 'bob', 'carol', 'stranger', 'junk') as fc.Arbitrary<'alice'>;
  const validWho = fc.constantFrom('alice', 'alice', 'bob', 'carol', 'stranger') as fc.Arbitrary<'alice'>;
  const reqArb: fc.Arbitrary<Req> = fc.oneof(
    {
      weight: 4,
      arbitrary: fc
        .array(
          fc.record({
            defect: fc.constantFrom(
              'held',
              'held',
              'fresh-no-cosig',
              'fresh-wrong-cosig',
              'fresh-wrong-subject-key',
              'fresh-expired',
              'fresh-bad-body',
              'fork',
              'gap',
              'garbage',
            ) as fc.Arbitrary<RecordDefect>,
            pick: fc.nat(),
            mutations: fc.oneof(fc.constant([] as Mutation[]), fc.array(mutationArb(), { maxLength: 2 })),
            edits: fc.oneof(
              fc.constant([] as [number, number][]),
              fc.array(fc.tuple(fc.nat(), fc.nat({ max: 255 })), { maxLength: 2 }),
            ),
          }),
          { minLength: 1, maxLength: 4 },
        )
        .map((items): Req => ({ kind: 'records', items })),
    },
    {
      weight: 4,
      arbitrary: fc
        .array(
          fc.record({
            mutations: fc.oneof(
              { weight: 2, arbitrary: fc.constant([] as Mutation[]) },
              { weight: 3, arbitrary: fc.array(mutationArb(), { minLength: 1, maxLength: 2 }) },
            ),
            to: fc.oneof(
              { weight: 4, arbitrary: fc.uniqueArray(validWho, { minLength: 1, maxLength: 3 }) },
              { weight: 1, arbitrary: fc.array(who, { minLength: 1, maxLength: 3 }) },
            ),
          }),
          { minLength: 1, maxLength: 3 },
        )
        .map((items): Req => ({ kind: 'deliver', items })),
    },
    {
      weight: 2,
      arbitrary: fc
        .record({
          since: fc.oneof(fc.nat(), weirdValue()),
          limit: fc.oneof(fc.integer({ min: -2, max: 600 }), weirdValue()),
        })
        .map((r): Req => ({ kind: 'sync', ...r })),
    },
    {
      weight: 2,
      arbitrary: fc
        .record({
          subject: fc.oneof(
            fc.constantFrom('$alice', '$carol'),
            fc.stringMatching(/^[0-9a-f]{40}$/),
            weirdValue(),
          ),
          since: fc.oneof(fc.nat({ max: 5 }), weirdValue()),
        })
        .map((r): Req => ({ kind: 'record', ...r })),
    },
    {
      weight: 1,
      arbitrary: fc
        .record({
          type: fc.oneof(
            fc.constantFrom(...S2S_METHODS.map((m) => m.name), 'hello', 'send', 'ping'),
            fc.string({ maxLength: 16 }),
          ),
          params: fc.dictionary(fc.string({ maxLength: 8 }), weirdValue(), { maxKeys: 4 }),
        })
        .filter((r) => r.type !== 'error' && !r.type.endsWith('.ok'))
        .map((r): Req => ({ kind: 'random', ...r })),
    },
    {
      weight: 2,
      arbitrary: fc
        .record({
          how: fc.constantFrom(
            'none',
            'garbage',
            'other-params',
            'other-id',
            'other-key',
            'not-bytes',
          ) as fc.Arbitrary<'none'>,
          type: fc.constantFrom('s2s.sync', 's2s.records', 's2s.deliver', 's2s.record'),
        })
        .map((r): Req => ({ kind: 'badsig', ...r })),
    },
    {
      weight: 1,
      arbitrary: fc.uint8Array({ maxLength: 100 }).map((bytes): Req => ({ kind: 'bytes', bytes })),
    },
    {
      // A map that is not a well-formed request or answer: no type, a type of another kind, weird ids.
      weight: 1,
      arbitrary: fc
        .record({
          type: fc.oneof(
            fc.constant(undefined),
            weirdValue(),
            fc.constantFrom('error', 's2s.sync.ok', 'x.ok'),
          ),
          id: fc.oneof(fc.constant(undefined), weirdValue()),
          rest: fc.dictionary(fc.string({ maxLength: 6 }), weirdValue(), { maxKeys: 3 }),
        })
        .map((r): Req => {
          const frame: Record<string, unknown> = { ...r.rest };
          if (r.type !== undefined) frame.type = r.type;
          if (r.id !== undefined) frame.id = r.id;
          return { kind: 'frame', frame };
        }),
    },
  );

  const fpOf = (w: string) =>
    ({
      alice: alice.identity.fingerprint,
      bob: bob.identity.fingerprint,
      carol: carol.fingerprint,
      stranger: stranger.fingerprint,
      junk: 'not a fingerprint',
    })[w] as string;

  const badSignatures = new WeakMap<object, number>();
  /** Answers seen (printed with PMB_FUZZ_VERBOSE=1 to judge the generators). */
  const outcomes = new Map<string, number>();

  async function runCase(req: Req): Promise<void> {
    const l = link && !link.peer.closeInfo ? link : await openLink();
    l.peer.frames.splice(0);
    const before1 = counts(s1);
    const before2 = counts(s2);
    let answer: Frame | undefined;
    let heldItems = 0;
    let type = '';
    switch (req.kind) {
      case 'records': {
        type = 's2s.records';
        const items = [];
        for (const spec of req.items) items.push(await item(spec));
        answer = await signedRequest(l, type, { items });
        if (answer?.type === 's2s.records.ok')
          assert.equal(answer.accepted, 0, 'an invalid or held record was accepted');
        break;
      }
      case 'deliver': {
        type = 's2s.deliver';
        const items = req.items.map((it) => ({
          envelope: mutate(base as unknown as Record<string, unknown>, it.mutations),
          to: it.to.map(fpOf),
        }));
        answer = await signedRequest(l, type, { items });
        if (answer?.type === 's2s.deliver.ok') {
          const results = answer.results as { status: string; code?: string }[];
          assert.equal(results.length, items.length, 'one result per item');
          for (const r of results) {
            if (r.status === 'held') heldItems++;
            else {
              assert.equal(r.status, 'refused');
              assert.ok(r.code !== undefined && Object.hasOwn(ERROR_CODES, r.code), `refused with ${r.code}`);
              assert.notEqual(r.code, 'internal');
            }
          }
        }
        break;
      }
      case 'sync':
        type = 's2s.sync';
        answer = await signedRequest(l, type, { since: req.since, limit: req.limit });
        break;
      case 'record': {
        type = 's2s.record';
        const subject =
          req.subject === '$alice'
            ? alice.identity.fingerprint
            : req.subject === '$carol'
              ? carol.fingerprint
              : req.subject;
        answer = await signedRequest(l, type, { subject, since: req.since });
        break;
      }
      case 'random':
        type = req.type;
        answer = await signedRequest(l, type, req.params);
        break;
      case 'badsig': {
        type = req.type;
        const params = { since: 0, limit: 1 };
        const id = nextId;
        const sig = {
          none: null,
          garbage: randomBytes(80),
          'other-params': await signBytes(
            s3.context.identity,
            requestSigningBytes(l.nonces, id, type, { since: 1, limit: 1 }),
          ),
          'other-id': await signBytes(
            s3.context.identity,
            requestSigningBytes(l.nonces, id + 1, type, params),
          ),
          'other-key': await signBytes(s2.context.identity, requestSigningBytes(l.nonces, id, type, params)),
          'not-bytes': 'signed, honestly',
        }[req.how];
        answer = await signedRequest(l, type, params, sig);
        if (answer) {
          assert.equal(answer.type, 'error');
          assert.equal(answer.code, 'bad_signature');
        }
        // The third one on a link closes it (maxBadSignatures): wait for that, so the next case does not
        // start on a link that is already closing.
        badSignatures.set(l, (badSignatures.get(l) ?? 0) + 1);
        if ((badSignatures.get(l) ?? 0) >= 3) {
          const closed = await l.peer.closed(10_000);
          assert.equal(closed.code, ERROR_CODES.bad_signature.close);
        }
        break;
      }
      case 'frame':
        // Answered (an error), ignored (an answer to nothing) or closed: but s1 lives on (checked below).
        l.peer.send(req.frame);
        await new Promise((r) => setTimeout(r, 20));
        break;
      case 'bytes':
        l.peer.sendRaw(req.bytes);
        // Undecodable: answered without an id and the link closed; a decodable non-map too.
        await l.peer.closed(10_000).catch(() => {});
        break;
    }
    const k = `${req.kind} ${answer ? (answer.type === 'error' ? `error:${String(answer.code)}` : answer.type) : `closed ${l.peer.closeInfo?.code} ${l.peer.closeInfo?.reason}`}${answer?.type === 's2s.deliver.ok' ? ` ${JSON.stringify(answer.results)}` : ''}${process.env.PMB_FUZZ_VERBOSE === '2' && answer?.type === 'error' ? ` ${String(answer.message).slice(0, 80)}` : ''}`;
    outcomes.set(k, (outcomes.get(k) ?? 0) + 1);
    if (answer?.type === 'error') {
      assert.ok(Object.hasOwn(ERROR_CODES, answer.code as string), `unknown code ${String(answer.code)}`);
      assert.notEqual(answer.code, 'internal', `internal error: ${String(answer.message)}`);
    } else if (answer) {
      const m = S2S_METHODS.find((x) => x.okType === answer.type);
      assert.ok(m && answer.type === `${type}.ok`, `answer of type ${answer.type} to ${type}`);
      assert.ok(m.response.safeParse(answer).success, `malformed ${answer.type}: ${JSON.stringify(answer)}`);
    } else if (req.kind !== 'frame') {
      // No answer: only because the link was closed, with a documented code.
      assert.ok(l.peer.closeInfo, `no answer to ${type}`);
    }
    for (const f of l.peer.frames) {
      if (f.type === 'error') assert.notEqual(f.code, 'internal', `internal error: ${String(f.message)}`);
    }
    if (l.peer.closeInfo)
      assert.ok(CLOSE_CODES.has(l.peer.closeInfo.code), `closed with ${l.peer.closeInfo.code}`);
    // Nothing invalid got in; nothing was passed on to s2; refused envelopes stored nothing.
    await new Promise((r) => setTimeout(r, 1));
    const after1 = counts(s1);
    const after2 = counts(s2);
    for (const k of ['feed', 'identities', 'records', 'bindings', 'domainKeys'] as const) {
      assert.equal(after1[k], before1[k], `s1 ${k} changed`);
      assert.equal(after2[k], before2[k], `s2 ${k} changed`);
    }
    if (heldItems === 0) {
      for (const k of ['messages', 'outbox', 'mailboxSeq'] as const)
        assert.equal(after1[k], before1[k], `s1 ${k} changed`);
    }
    // The honest peer still has its link.
    assert.ok(s1.context.links.get('s2.test')?.open, 'the link s1 - s2 dropped');
  }

  it('every s2s frame is refused with a typed error or a refusing result; honest peers keep working', async () => {
    await checkProperty('link: s2s frames from a fuzzing peer', fc.asyncProperty(reqArb, runCase), {
      runs: 100,
      shrink: false,
    });
    if (process.env.PMB_FUZZ_VERBOSE) console.log([...outcomes].sort((a, b) => b[1] - a[1]));
    // The raw link (or a new one) still serves a well-formed request.
    const l = link && !link.peer.closeInfo ? link : await openLink();
    const res = await signedRequest(l, 's2s.sync', { since: 0, limit: 1 });
    assert.equal(res?.type, 's2s.sync.ok', JSON.stringify(res));
    // And mail still crosses the honest link.
    const box = inbox(bob);
    await alice.send('bob@s2.test', 'after the link fuzz');
    await box.waitFor(1, 15_000);
    assert.equal(box.messages.at(-1)?.text, 'after the link fuzz');
  });
});
