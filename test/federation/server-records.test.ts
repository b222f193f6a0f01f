import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  cosignRecord,
  createRecord,
  decodeRecord,
  generateIdentity,
  type Identity,
} from '../../src/crypto/index.js';
import { acceptServerRecord, ensureOwnServerRecord } from '../../src/federation/server-records.js';
import type { ServerBody, SignedRecord } from '../../src/protocol/records.js';
import { openStore, type Store } from '../../src/store/index.js';
import { tempDir } from '../helpers/servers.js';

const body = (domain: string, port = 8447): ServerBody => ({
  domain,
  endpoints: { ws: `ws://127.0.0.1:${port}` },
});

async function serverRecord(
  server: Identity,
  b: ServerBody,
  seq: number,
  prev: Uint8Array | null,
): Promise<SignedRecord> {
  return createRecord(server, {
    kind: 'server',
    subject: server.fingerprint,
    seq,
    prev,
    ts: Date.now(),
    body: b,
  });
}

describe('server records and domain pinning', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let store: Store;
  let b: Identity;
  let impostor: Identity;
  before(async () => {
    dir = await tempDir();
    store = openStore(join(dir.path, 'pmb.db'));
    b = (await generateIdentity()).identity;
    impostor = (await generateIdentity()).identity;
  });
  after(async () => {
    store.close();
    await dir[Symbol.asyncDispose]();
  });

  it("a server's own record is made once, and again (seq + 1) only when its endpoints change", async () => {
    const own = (await generateIdentity()).identity;
    const first = await ensureOwnServerRecord(store, own, body('own.test'), Date.now());
    const same = await ensureOwnServerRecord(store, own, body('own.test'), Date.now());
    assert.deepEqual(same.payload, first.payload);
    const moved = await ensureOwnServerRecord(store, own, body('own.test', 9000), Date.now());
    assert.equal(decodeRecord(moved).seq, 2);
    assert.equal(store.identities.domainKey('own.test'), own.fingerprint);
  });

  it('the first key seen for a domain is pinned; the same record again is known', async () => {
    const r1 = await serverRecord(b, body('b.test'), 1, null);
    assert.equal((await acceptServerRecord(store, r1, b, Date.now())).outcome, 'accepted');
    assert.equal((await acceptServerRecord(store, r1, b, Date.now())).outcome, 'known');
    assert.equal(store.identities.domainKey('b.test'), b.fingerprint);
  });

  it('a server impersonating another domain is refused (wrong_server)', async () => {
    const claim = await serverRecord(impostor, body('b.test', 6666), 1, null);
    await assert.rejects(acceptServerRecord(store, claim, impostor, Date.now()), { code: 'wrong_server' });
    assert.equal(store.identities.domainKey('b.test'), b.fingerprint);
  });

  it('a forged server signature is refused: tampered payload, or signed by another key', async () => {
    const r = await serverRecord(b, body('b.test', 7000), 2, null);
    const tampered = { ...r, payload: new Uint8Array(r.payload) };
    tampered.payload[tampered.payload.length - 3] = (tampered.payload.at(-3) as number) ^ 1;
    await assert.rejects(acceptServerRecord(store, tampered, b, Date.now()));
    // The impostor signs a record about b's key: the signature is not b's.
    const fake = await createRecord(impostor, {
      kind: 'server',
      subject: b.fingerprint,
      seq: 2,
      prev: null,
      ts: Date.now(),
      body: body('b.test', 7000),
    });
    await assert.rejects(acceptServerRecord(store, fake, b, Date.now()), { code: 'bad_signature' });
  });

  it('another record for a seq already held is a fork, kept as evidence; the chain does not move', async () => {
    const head = store.identities.head(b.fingerprint)!;
    const r2 = await serverRecord(b, body('b.test', 7001), 2, head.hash);
    assert.equal((await acceptServerRecord(store, r2, b, Date.now())).outcome, 'accepted');
    const r1 = await serverRecord(b, body('b.test'), 1, null);
    await assert.rejects(acceptServerRecord(store, r1, b, Date.now()), { code: 'record_fork' });
    const other2 = await serverRecord(b, body('b.test', 7002), 2, head.hash);
    await assert.rejects(acceptServerRecord(store, other2, b, Date.now()), { code: 'record_fork' });
    assert.ok(store.identities.conflicts(b.fingerprint).length >= 1);
    assert.equal(store.identities.head(b.fingerprint)?.seq, 2);
  });

  it('a planned key rotation, signed by the pinned key too, moves the pin', async () => {
    const newKey = (await generateIdentity()).identity;
    const record = await serverRecord(newKey, body('b.test', 7100), 1, null);
    await assert.rejects(acceptServerRecord(store, record, newKey, Date.now()), { code: 'wrong_server' });
    const endorsed = await cosignRecord(b, record);
    assert.equal((await acceptServerRecord(store, endorsed, newKey, Date.now())).outcome, 'accepted');
    assert.equal(store.identities.domainKey('b.test'), newKey.fingerprint);
  });
});
