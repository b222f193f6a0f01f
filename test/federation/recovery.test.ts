import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { PmbClient as Client, type PmbClient } from '../../src/client/index.js';
import { createRecord, decodeRecord, type Identity, recordHash } from '../../src/crypto/index.js';
import { Publish, Register } from '../../src/protocol/frames.js';
import { BINDING_TTL_MS, type SignedRecord } from '../../src/protocol/records.js';
import type { PmbServer } from '../../src/server/index.js';
import { storedToSigned } from '../../src/store/index.js';
import { linkAll, startNetwork, type TestNetwork } from '../helpers/network.js';
import { connectUser, inbox, NodeWebSocket, newIdentity } from '../helpers/servers.js';
import { until } from '../helpers/wait.js';

const fast = { links: { backoff: { initialMs: 50, maxMs: 400 } } };
const DAY = 24 * 3600 * 1000;
const where = (s: PmbServer, fp: string) => s.context.store.identities.location(fp);
const headSeq = (s: PmbServer, fp: string) => s.context.store.identities.head(fp)?.seq ?? 0;

/** Log `identity` in on `server` from another device; `move` makes that server home (a location record). */
async function loginOn(
  server: PmbServer,
  identity: Identity,
  device: string,
  move = false,
): Promise<PmbClient> {
  const c = await Client.connect({ url: server.url, WebSocket: NodeWebSocket, identity, device });
  await c.login({ move });
  return c;
}

/** A location record making `server` home, at `seq` after the held record seq - 1, signed by `signer`. */
async function override(
  signer: Identity,
  at: PmbServer,
  subject: string,
  seq: number,
  server: PmbServer,
): Promise<SignedRecord> {
  const before = at.context.store.identities.records(subject).find((r) => r.seq === seq - 1);
  assert.ok(before, `record ${seq - 1} is held`);
  return createRecord(signer, {
    kind: 'location',
    subject,
    seq,
    prev: await recordHash(storedToSigned(before)),
    ts: Date.now(),
    body: { domain: server.config.domain, server: server.fingerprint },
  });
}

describe('recovery key: a thief with the stolen daily key, s1 s2 s3 in a mesh', () => {
  let net: TestNetwork;
  let owner: PmbClient;
  let recovery: Identity;
  let fp: string;
  before(async () => {
    net = await startNetwork(3, fast);
    await linkAll(net);
    const [s1] = net.servers as [PmbServer];
    owner = await connectUser(s1, 'owner');
    fp = owner.identity.fingerprint;
    recovery = await newIdentity();
    await owner.publish('recovery', { key: recovery.publicKeyBytes, windowDays: 30 });
    for (const s of net.servers) await until(() => headSeq(s, fp) === 2, 10_000, 'the recovery record');
  });
  after(async () => {
    owner?.close();
    await net.close();
  });

  it('a thief with the stolen daily key moves the account; the owner overrides with the recovery key and every server follows', async () => {
    const [s1, s2, s3] = net.servers as [PmbServer, PmbServer, PmbServer];
    const alice = await connectUser(s2, 'alice');
    const kicked = new Promise<number>((resolve) => {
      owner.events.close = (code) => resolve(code);
    });
    // The thief logs in on s3 with a copy of the daily key and makes s3 the account's home.
    const thief = await loginOn(s3, owner.identity, 'thief', true);
    const thiefKicked = new Promise<number>((resolve) => {
      thief.events.close = (code) => resolve(code);
    });
    for (const s of net.servers) await until(() => where(s, fp) === 's3.test', 10_000, 'the thief’s move');
    assert.equal(await kicked, 1008, 'the owner’s session on s1 is told the account moved');
    const stolen = s3.context.store.identities.records(fp).find((r) => r.seq === 3);
    assert.equal(stolen?.kind, 'location');

    // The owner logs in on s1 again and publishes a location record signed by the recovery key.
    owner = await loginOn(s1, owner.identity, 'dev1');
    const box = inbox(owner);
    const record = await override(recovery, s1, fp, 3, s1);
    const res = await owner.conn.request(Publish, { record });
    assert.equal(res.accepted, true);

    for (const s of net.servers) {
      await until(() => where(s, fp) === 's1.test', 10_000, `${s.config.domain} to follow the override`);
      const held = s.context.store.identities.records(fp);
      assert.deepEqual(
        held.map((r) => r.seq),
        [1, 2, 3],
      );
      assert.deepEqual(new Uint8Array(held[2]?.hash ?? []), await recordHash(record));
      assert.deepEqual(
        s.context.store.identities.conflicts(fp),
        [{ seq: 3, reason: 'overridden' }],
        `${s.config.domain} keeps the thief’s record as evidence`,
      );
      // A late joiner pulling this feed gets the override, not the thief's record.
      const fed = s.context.store.identities
        .feedAfter(0, 10_000)
        .filter((item) => decodeRecord(item.record).subject === fp);
      assert.deepEqual(
        fed.map((item) => decodeRecord(item.record).seq),
        [1, 2, 3],
      );
      assert.deepEqual(await recordHash(fed[2]?.record as SignedRecord), await recordHash(record));
    }
    assert.equal(await thiefKicked, 1008, 'the thief’s session on s3 is told the account moved');

    // Mail follows the account home.
    await alice.send(fp, 'welcome back');
    await box.waitFor(1, 10_000);
    assert.equal(box.messages[0]?.text, 'welcome back');
    alice.close();

    // The thief's record, sent again, is refused: it contradicts the chain now held.
    assert.ok(stolen);
    await assert.rejects(owner.conn.request(Publish, { record: storedToSigned(stolen) }), {
      code: 'record_fork',
    });
    assert.equal(where(s1, fp), 's1.test');
  });

  it('a record signed by a key that is not the recovery key is refused', async () => {
    const [s1, , s3] = net.servers as [PmbServer, PmbServer, PmbServer];
    const stranger = await newIdentity();
    const feed = s1.context.store.identities.feedHead();
    // Replacing the owner's override, and following it: both refused.
    for (const seq of [3, 4]) {
      const forged = await override(stranger, s1, fp, seq, s3);
      await assert.rejects(owner.conn.request(Publish, { record: forged }), { code: 'bad_signature' });
    }
    // A server signing in the owner's name fares no better.
    const byServer = await override(s3.context.identity, s1, fp, 4, s3);
    await assert.rejects(owner.conn.request(Publish, { record: byServer }), { code: 'bad_signature' });
    assert.equal(s1.context.store.identities.feedHead(), feed, 'nothing entered the feed');
    assert.equal(where(s1, fp), 's1.test');
  });

  it('an override cannot replace the recovery record itself, nor anything before it', async () => {
    const [s1, , s3] = net.servers as [PmbServer, PmbServer, PmbServer];
    const onRecovery = await override(recovery, s1, fp, 2, s3);
    await assert.rejects(owner.conn.request(Publish, { record: onRecovery }), { code: 'forbidden' });
    // seq 1 has no record before it: prev is null.
    const first = await createRecord(recovery, {
      kind: 'location',
      subject: fp,
      seq: 1,
      prev: null,
      ts: Date.now(),
      body: { domain: 's3.test', server: s3.fingerprint },
    });
    await assert.rejects(owner.conn.request(Publish, { record: first }), { code: 'forbidden' });
    assert.deepEqual(
      s1.context.store.identities.records(fp).map((r) => r.kind),
      ['binding', 'recovery', 'location'],
    );
    assert.equal(where(s1, fp), 's1.test');
  });

  it('a name registered with the stolen daily key is released by the override', async () => {
    const [s1, s2, s3] = net.servers as [PmbServer, PmbServer, PmbServer];
    const head = s3.context.store.identities.records(fp).at(-1);
    assert.equal(head?.seq, 3);
    // The thief registers loot@s3.test for the account: a binding at seq 4, cosigned by s3.
    const binding = await createRecord(owner.identity, {
      kind: 'binding',
      subject: fp,
      seq: 4,
      prev: await recordHash(storedToSigned(head)),
      ts: Date.now(),
      expires: Date.now() + BINDING_TTL_MS,
      body: { nick: 'loot', domain: 's3.test', registrar: s3.fingerprint },
    });
    const thief = await Client.connect({
      url: s3.url,
      WebSocket: NodeWebSocket,
      identity: owner.identity,
      device: 'thief',
    });
    await thief.conn.request(Register, { binding, publicKey: owner.identity.publicKeyBytes });
    thief.close();
    const looted = (s: PmbServer) => s.context.store.identities.bindingOwner('loot', 's3.test', Date.now());
    for (const s of net.servers) await until(() => looted(s) === fp, 10_000, 'the thief’s binding');

    const record = await override(recovery, s1, fp, 4, s1);
    assert.equal((await owner.conn.request(Publish, { record })).accepted, true);
    for (const s of [s1, s2, s3]) {
      await until(() => looted(s) === undefined, 10_000, `${s.config.domain} to release loot@s3.test`);
      assert.equal(s.context.store.identities.bindingOwner('owner', 's1.test', Date.now()), fp);
      assert.equal(where(s, fp), 's1.test');
    }
  });
});

describe('recovery key: the window', () => {
  let net: TestNetwork;
  let skew = 0;
  before(async () => {
    net = await startNetwork(2, { ...fast, config: { now: () => Date.now() + skew } });
    await linkAll(net);
  });
  after(async () => {
    await net.close();
  });

  it('an override within the window is accepted; one older than the window is refused', async () => {
    const [s1, s2] = net.servers as [PmbServer, PmbServer];
    const first = await connectUser(s1, 'owner');
    const fp = first.identity.fingerprint;
    const recovery = await newIdentity();
    await first.publish('recovery', { key: recovery.publicKeyBytes, windowDays: 30 });
    for (const s of net.servers) await until(() => headSeq(s, fp) === 2, 10_000, 'the recovery record');
    const thief = await loginOn(s2, first.identity, 'thief', true);
    for (const s of net.servers) await until(() => where(s, fp) === 's2.test', 10_000, 'the thief’s move');
    first.close();
    thief.close();
    let owner = await loginOn(s1, first.identity, 'dev1');
    try {
      // 29 days later (the servers' clocks; they only move forward), the thief's record is still in the window.
      skew = 29 * DAY;
      const inTime = await override(recovery, s1, fp, 3, s1);
      assert.equal((await owner.conn.request(Publish, { record: inTime })).accepted, true);
      for (const s of net.servers) await until(() => where(s, fp) === 's1.test', 10_000, 'the override');

      // The thief moves the account again, and the owner waits too long: 31 days after that record.
      const again = await loginOn(s2, first.identity, 'thief2', true);
      again.close();
      for (const s of net.servers) await until(() => where(s, fp) === 's2.test', 10_000, 'the second move');
      const moved = s1.context.store.identities.records(fp).at(-1);
      assert.equal(moved?.seq, 4);
      owner.close(); // told the account moved; the owner logs in again
      owner = await loginOn(s1, first.identity, 'dev1');
      skew = 29 * DAY + 31 * DAY;
      const late = await override(recovery, s1, fp, 4, s1);
      await assert.rejects(owner.conn.request(Publish, { record: late }), { code: 'stale_record' });
      assert.equal(where(s1, fp), 's2.test');
      assert.deepEqual(
        s1.context.store.identities.records(fp).map((r) => r.seq),
        [1, 2, 3, 4],
      );
    } finally {
      owner.close();
    }
  });

  it('a thief who backdates his record out of the window is still overridden (its age is when servers got it)', async () => {
    skew = 0;
    const [s1, s2] = net.servers as [PmbServer, PmbServer];
    const owner = await connectUser(s1, 'owner2');
    const fp = owner.identity.fingerprint;
    const recovery = await newIdentity();
    await owner.publish('recovery', { key: recovery.publicKeyBytes, windowDays: 30 });
    for (const s of net.servers) await until(() => headSeq(s, fp) === 2, 10_000, 'the recovery record');
    const thief = await loginOn(s2, owner.identity, 'thief');
    const held = s2.context.store.identities.records(fp).at(-1);
    assert.ok(held);
    const backdated = await createRecord(owner.identity, {
      kind: 'location',
      subject: fp,
      seq: 3,
      prev: await recordHash(storedToSigned(held)),
      ts: Date.now() - 60 * DAY,
      body: { domain: 's2.test', server: s2.fingerprint },
    });
    assert.equal((await thief.conn.request(Publish, { record: backdated })).accepted, true);
    thief.close();
    for (const s of net.servers) await until(() => where(s, fp) === 's2.test', 10_000, 'the thief’s move');
    const fixed = await override(recovery, s1, fp, 3, s1);
    const again = await loginOn(s1, owner.identity, 'dev9');
    assert.equal((await again.conn.request(Publish, { record: fixed })).accepted, true);
    for (const s of net.servers)
      await until(() => where(s, fp) === 's1.test', 10_000, 'the override everywhere');
    again.close();
    owner.close();
  });
});
