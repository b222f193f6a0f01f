import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { challengeAnswer, type Identity, readChallenge } from '../../src/crypto/index.js';
import { randomBytes } from '../../src/protocol/bytes.js';
import { RawPeer } from '../helpers/raw.js';
import { connectUser, newIdentity, startServer } from '../helpers/servers.js';

type Server = Awaited<ReturnType<typeof startServer>>;

/** A connection that has said hello and asked for a login challenge for `fingerprint`. */
async function startLogin(server: Server, fingerprint: string, device = 'dev1') {
  const peer = await RawPeer.open(server.url);
  const hello = await peer.hello();
  const started = await peer.request({ type: 'login.start', id: 1, fingerprint, device });
  assert.equal(started.type, 'login.start.ok', JSON.stringify(started));
  return {
    peer,
    connection: hello.connection as string,
    challenge: started.challenge as Uint8Array,
    expires: started.expires as number,
  };
}

async function answerFor(
  me: Identity,
  challenge: Uint8Array,
  server: string,
  connection: string,
  expires: number,
) {
  const secret = await readChallenge(me, challenge);
  return challengeAnswer({ secret, server, connection, expires });
}

describe('login: threats to the encrypted challenge', () => {
  let server: Server;
  let other: Server;
  let alice: Identity;
  let now = Date.now();

  before(async () => {
    server = await startServer({ now: () => now });
    other = await startServer({ domain: 'b.test' });
    alice = await newIdentity();
    (await connectUser(server, 'alice', { identity: alice })).close();
  });
  after(async () => {
    await server.close();
    await other.close();
  });

  it('no password on the server: the right key logs in and no password-like column exists anywhere', async () => {
    const { peer, challenge, connection, expires } = await startLogin(server, alice.fingerprint);
    const answer = await answerFor(alice, challenge, server.fingerprint, connection, expires);
    const ok = await peer.request({ type: 'login.finish', id: 2, answer });
    assert.equal(ok.type, 'login.finish.ok');
    assert.equal(ok.fingerprint, alice.fingerprint);
    const tables = server.context.store.db.all<{ sql: string }>(
      "SELECT sql FROM sqlite_master WHERE type = 'table'",
    );
    assert.ok(!tables.some((t) => /pass|hash_pw|secret/i.test(t.sql)), 'no password-like column exists');
    peer.close();
  });

  it('login with the wrong key: a key that cannot decrypt the challenge cannot log in (login_failed)', async () => {
    const mallory = await newIdentity();
    const { peer, challenge, connection, expires } = await startLogin(server, alice.fingerprint);
    await assert.rejects(readChallenge(mallory, challenge), { code: 'login_failed' });
    const guess = await challengeAnswer({
      secret: randomBytes(32),
      server: server.fingerprint,
      connection,
      expires,
    });
    const res = await peer.request({ type: 'login.finish', id: 2, answer: guess });
    assert.equal(res.type, 'error');
    assert.equal(res.code, 'login_failed');
    const send = await peer.request({ type: 'ping', id: 3 });
    assert.equal(send.type, 'ping.ok', 'the connection stays usable but not logged in');
    peer.close();
  });

  it('replayed login: an answer already used is refused on its own connection and on a new one (login_failed)', async () => {
    const first = await startLogin(server, alice.fingerprint);
    const answer = await answerFor(
      alice,
      first.challenge,
      server.fingerprint,
      first.connection,
      first.expires,
    );
    assert.equal((await first.peer.request({ type: 'login.finish', id: 2, answer })).type, 'login.finish.ok');
    // Replaying on the same connection: the challenge was single use.
    const again = await first.peer.request({ type: 'login.finish', id: 3, answer });
    assert.equal(again.code, 'login_failed');
    // Replaying on a new connection with a new challenge.
    const second = await startLogin(server, alice.fingerprint);
    const res = await second.peer.request({ type: 'login.finish', id: 2, answer });
    assert.equal(res.code, 'login_failed');
    first.peer.close();
    second.peer.close();
  });

  it('relayed challenge: an answer alice made for her own connection is refused on the attacker’s (login_failed)', async () => {
    // Mallory opens a connection as alice and gets alice to answer the challenge while alice believes she
    // is on her own connection: the answer names alice's connection, not mallory's.
    const mallory = await startLogin(server, alice.fingerprint);
    const alicesOwn = await RawPeer.open(server.url);
    const alicesHello = await alicesOwn.hello();
    const answer = await answerFor(
      alice,
      mallory.challenge,
      server.fingerprint,
      alicesHello.connection as string,
      mallory.expires,
    );
    const res = await mallory.peer.request({ type: 'login.finish', id: 2, answer });
    assert.equal(res.code, 'login_failed');
    mallory.peer.close();
    alicesOwn.close();
  });

  it('login answer for another server: an answer made for server B is refused by server A (login_failed)', async () => {
    const mallory = await startLogin(server, alice.fingerprint);
    // Alice thinks she is talking to server B (a server mallory runs) and answers for it.
    const answer = await answerFor(
      alice,
      mallory.challenge,
      other.fingerprint,
      mallory.connection,
      mallory.expires,
    );
    const res = await mallory.peer.request({ type: 'login.finish', id: 2, answer });
    assert.equal(res.code, 'login_failed');
    mallory.peer.close();
  });

  it('late login answer: an answer after the challenge lifetime is refused (challenge_expired)', async () => {
    const { peer, challenge, connection, expires } = await startLogin(server, alice.fingerprint);
    const answer = await answerFor(alice, challenge, server.fingerprint, connection, expires);
    now += server.config.limits.challengeTtlMs + 1;
    try {
      const res = await peer.request({ type: 'login.finish', id: 2, answer });
      assert.equal(res.code, 'challenge_expired');
    } finally {
      now = Date.now();
      peer.close();
    }
  });

  it('login as nobody: login.start for a fingerprint nobody registered is refused (unknown_account)', async () => {
    const peer = await RawPeer.open(server.url);
    await peer.hello();
    const res = await peer.request({ type: 'login.start', id: 1, fingerprint: 'ab'.repeat(20), device: 'd' });
    assert.equal(res.code, 'unknown_account');
    peer.close();
  });
});

describe('login flood', () => {
  it('half-finished logins from one address: beyond pendingLoginsPerAddress they are refused (too_many_pending_logins), and a closed one frees its slot', async () => {
    const server = await startServer({ limits: { pendingLoginsPerAddress: 2 } as never });
    try {
      const alice = await newIdentity();
      (await connectUser(server, 'alice', { identity: alice })).close();
      const first = await startLogin(server, alice.fingerprint);
      const second = await startLogin(server, alice.fingerprint);
      const third = await RawPeer.open(server.url);
      await third.hello();
      const refused = await third.request({
        type: 'login.start',
        id: 1,
        fingerprint: alice.fingerprint,
        device: 'd',
      });
      assert.equal(refused.code, 'too_many_pending_logins');
      // A connection that goes away frees its slot.
      first.peer.close();
      await first.peer.closed();
      await new Promise((r) => setTimeout(r, 50));
      const again = await third.request({
        type: 'login.start',
        id: 2,
        fingerprint: alice.fingerprint,
        device: 'd',
      });
      assert.equal(again.type, 'login.start.ok');
      second.peer.close();
      third.close();
    } finally {
      await server.close();
    }
  });
});
