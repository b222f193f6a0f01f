import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { PmbClient } from '../../src/client/index.js';
import { cosignRecord, createRecord, recordHash } from '../../src/crypto/index.js';
import { Publish } from '../../src/protocol/frames.js';
import { BINDING_TTL_MS, type SignedRecord } from '../../src/protocol/records.js';
import { storedToSigned } from '../../src/store/index.js';
import type { Frame } from '../helpers/raw.js';
import { RawPeer } from '../helpers/raw.js';
import { connectUser, NodeWebSocket, newIdentity, startServer } from '../helpers/servers.js';
import { lyingServer } from './lying-server.js';

type Server = Awaited<ReturnType<typeof startServer>>;

function tableCounts(server: Server): Record<string, number> {
  const db = server.context.store.db;
  const out: Record<string, number> = {};
  for (const t of ['identities', 'records', 'bindings', 'accounts', 'messages', 'mailbox']) {
    out[t] = Number(db.get<{ n: number }>(`SELECT count(*) AS n FROM ${t}`)?.n);
  }
  return out;
}

/**
 * Threats to signed records (who owns a name, where an account lives): no server and no other user can
 * make one that others accept. Federation paths (gossip, s2s) are in test/federation/*.test.ts; the
 * verification itself in test/crypto/records.test.ts.
 */
describe('records: forged, stripped, replayed and forked', () => {
  let server: Server;
  before(async () => {
    server = await startServer();
  });
  after(() => server.close());

  const held = (fp: string, seq: number): SignedRecord => {
    const r = server.context.store.identities.records(fp).find((x) => x.seq === seq);
    assert.ok(r, `record ${seq} of ${fp} is held`);
    return storedToSigned(r);
  };
  const where = (fp: string) => server.context.store.identities.location(fp);

  it('forged registration: a binding signed by another key than the one registered, or tampered after signing, is refused and writes nothing', async () => {
    const before = tableCounts(server);
    const mallory = await newIdentity();
    const victim = await newIdentity();
    // Mallory signs a binding that claims to be the victim's.
    const binding = await createRecord(mallory, {
      kind: 'binding',
      subject: mallory.fingerprint,
      seq: 1,
      prev: null,
      ts: Date.now(),
      expires: Date.now() + BINDING_TTL_MS,
      body: { nick: 'victim', domain: 'a.test', registrar: server.fingerprint },
    });
    const peer = await RawPeer.open(server.url);
    await peer.hello();
    const res = await peer.request({ type: 'register', id: 1, binding, publicKey: victim.publicKeyBytes });
    assert.equal(res.type, 'error');
    assert.match(String(res.code), /bad_signature|bad_record/);
    // A tampered payload (signature no longer matches) is refused too.
    const tampered = { ...binding, payload: new Uint8Array(binding.payload) };
    tampered.payload[tampered.payload.length - 1] = (tampered.payload.at(-1) as number) ^ 1;
    const res2 = await peer.request({
      type: 'register',
      id: 2,
      binding: tampered,
      publicKey: mallory.publicKeyBytes,
    });
    assert.equal(res2.type, 'error');
    assert.deepEqual(tableCounts(server), before);
    peer.close();
  });

  it('registration squatting: a nickname belongs to its first owner (nickname_taken), and a server registers names of its own domain only (wrong_domain)', async () => {
    const first = await connectUser(server, 'carol');
    await assert.rejects(connectUser(server, 'carol'), { code: 'nickname_taken' });
    // A name of another domain cannot be had here, where its registrar is not.
    const squatter = await newIdentity();
    const elsewhere = await createRecord(squatter, {
      kind: 'binding',
      subject: squatter.fingerprint,
      seq: 1,
      prev: null,
      ts: Date.now(),
      expires: Date.now() + BINDING_TTL_MS,
      body: { nick: 'carol', domain: 'b.test', registrar: server.fingerprint },
    });
    const peer = await RawPeer.open(server.url);
    await peer.hello();
    const res = await peer.request({
      type: 'register',
      id: 1,
      binding: elsewhere,
      publicKey: squatter.publicKeyBytes,
    });
    assert.equal(res.code, 'wrong_domain');
    assert.equal(
      server.context.store.identities.bindingOwner('carol', 'a.test', Date.now()),
      first.identity.fingerprint,
    );
    peer.close();
    first.close();
  });

  it('stripped signatures: a location record without its owner’s signature is refused by the server, and a binding stripped of its registrar’s or its key’s signature is not believed by the SDK (bad_record)', async () => {
    const owner = await connectUser(server, 'sam');
    const fp = owner.identity.fingerprint;
    const next = await createRecord(owner.identity, {
      kind: 'location',
      subject: fp,
      seq: 2,
      prev: await recordHash(held(fp, 1)),
      ts: Date.now(),
      body: { domain: 'a.test', server: server.fingerprint },
    });
    // Someone (a server, another user) keeps only a signature of his own over sam's record.
    const mallory = await newIdentity();
    const cosigned = await cosignRecord(mallory, next);
    const stripped = { payload: next.payload, sigs: cosigned.sigs.filter((s) => s.by !== fp) };
    await assert.rejects(owner.conn.request(Publish, { record: stripped }), (e: { code?: string }) =>
      ['forbidden', 'bad_signature'].includes(e.code ?? ''),
    );
    assert.equal(server.context.store.identities.head(fp)?.seq, 1, 'the chain did not move');
    assert.equal((await owner.conn.request(Publish, { record: next })).accepted, true);
    owner.close();

    // A server strips signatures off sam's binding in its lookup answers.
    for (const keep of ['subject', 'registrar'] as const) {
      const lying = await lyingServer(server, (f: Frame) => {
        if (f.type !== 'lookup.ok') return [f];
        // Record 1 is the binding; what follows (the location record) is left alone.
        const records = (f.records as SignedRecord[]).map((r, i) =>
          i > 0 ? r : { ...r, sigs: r.sigs.filter((s) => (keep === 'subject' ? s.by === fp : s.by !== fp)) },
        );
        return [{ ...f, records }];
      });
      const reader = await PmbClient.connect({
        url: lying.url,
        WebSocket: NodeWebSocket,
        identity: await newIdentity(),
        device: 'd',
      });
      try {
        await assert.rejects(
          reader.lookup('sam@a.test'),
          { code: 'bad_record' },
          `only the ${keep} signature`,
        );
      } finally {
        reader.close();
        await lying.close();
      }
    }
  });

  it('location record replay and fork: an older location record published again does not move the account back, and a second record for a held seq is refused (record_fork), kept as evidence, and moves nothing', async () => {
    const first = await connectUser(server, 'olivia');
    const fp = first.identity.fingerprint;
    const elsewhere = (await newIdentity()).fingerprint;
    // seq 2 moved her to b.test once ...
    const away = await createRecord(first.identity, {
      kind: 'location',
      subject: fp,
      seq: 2,
      prev: await recordHash(held(fp, 1)),
      ts: Date.now(),
      body: { domain: 'b.test', server: elsewhere },
    });
    assert.equal((await first.conn.request(Publish, { record: away })).accepted, true);
    assert.equal(where(fp), 'b.test');
    first.close();
    // ... and seq 3 brought her back here.
    const back = await PmbClient.connect({
      url: server.url,
      WebSocket: NodeWebSocket,
      identity: first.identity,
      device: 'dev2',
    });
    try {
      await back.login({ move: true });
      assert.equal(where(fp), 'a.test');
      const home = held(fp, 3);

      // Replayed (by a server that kept it, or anyone): known, not new; she stays.
      assert.equal((await back.conn.request(Publish, { record: away })).accepted, false);
      assert.equal(where(fp), 'a.test');

      // A fork: another seq 3 after seq 2, back to b.test (what a thief with her key would publish).
      const fork = await createRecord(first.identity, {
        kind: 'location',
        subject: fp,
        seq: 3,
        prev: await recordHash(away),
        ts: Date.now(),
        body: { domain: 'b.test', server: elsewhere },
      });
      await assert.rejects(back.conn.request(Publish, { record: fork }), { code: 'record_fork' });
      assert.equal(where(fp), 'a.test');
      assert.deepEqual(await recordHash(held(fp, 3)), await recordHash(home), 'the chain keeps seq 3');
      assert.deepEqual(server.context.store.identities.conflicts(fp), [{ seq: 3, reason: 'fork' }]);
    } finally {
      back.close();
    }
  });
});
