import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { createRecord } from '../../src/crypto/index.js';
import { encodeCbor } from '../../src/protocol/codec.js';
import { BINDING_TTL_MS } from '../../src/protocol/records.js';
import { SUBPROTOCOLS } from '../../src/protocol/version.js';
import { RawPeer } from '../helpers/raw.js';
import { connectUser, inbox, newIdentity, startServer } from '../helpers/servers.js';

type Server = Awaited<ReturnType<typeof startServer>>;

async function stillServes(server: Server): Promise<void> {
  const peer = await RawPeer.open(server.url);
  assert.equal((await peer.hello()).type, 'hello.ok');
  peer.close();
}

function tableCounts(server: Server): Record<string, number> {
  const db = server.context.store.db;
  const out: Record<string, number> = {};
  for (const t of ['identities', 'records', 'bindings', 'accounts', 'messages', 'mailbox']) {
    out[t] = Number(db.get<{ n: number }>(`SELECT count(*) AS n FROM ${t}`)?.n);
  }
  return out;
}

describe('bad input gets a typed error and loses nothing', () => {
  let server: Server;
  before(async () => {
    server = await startServer({
      limits: { maxFrameBytes: 64 * 1024, framesPerSecond: 50 } as never,
    });
  });
  after(() => server.close());

  it('an oversized frame closes the connection with 1009 and the server keeps serving', async () => {
    const peer = await RawPeer.open(server.url);
    await peer.hello();
    peer.sendRaw(new Uint8Array(64 * 1024 + 1));
    const closed = await peer.closed();
    assert.equal(closed.code, 1009);
    await stillServes(server);
  });

  it('malformed CBOR gets a bad_frame error and the connection stays usable', async () => {
    const peer = await RawPeer.open(server.url);
    await peer.hello();
    peer.sendRaw(new Uint8Array([0xbf, 0x61, 0x61])); // an unterminated map
    const err = await peer.next((f) => f.type === 'error');
    assert.equal(err.code, 'bad_frame');
    assert.equal((await peer.request({ type: 'ping', id: 9 })).type, 'ping.ok');
    peer.close();
  });

  it('malformed JSON on the JSON subprotocol gets a bad_frame error', async () => {
    const peer = await RawPeer.open(server.url, 'json');
    await peer.hello();
    peer.sendRaw('{"type": "ping", "id": ');
    assert.equal((await peer.next((f) => f.type === 'error')).code, 'bad_frame');
    assert.equal((await peer.request({ type: 'ping', id: 9 })).type, 'ping.ok');
    peer.close();
  });

  it('a frame that is not a map, or has no type, is refused', async () => {
    const peer = await RawPeer.open(server.url);
    await peer.hello();
    peer.sendRaw(encodeCbor([1, 2, 3]));
    assert.equal((await peer.next((f) => f.type === 'error')).code, 'bad_frame');
    peer.send({ id: 4 });
    assert.equal((await peer.next((f) => f.type === 'error')).code, 'unknown_type');
    peer.close();
  });

  it('an unknown frame type gets unknown_type, echoing the request id', async () => {
    const peer = await RawPeer.open(server.url);
    await peer.hello();
    const res = await peer.request({ type: 'launch.missiles', id: 77 });
    assert.equal(res.type, 'error');
    assert.equal(res.code, 'unknown_type');
    peer.close();
  });

  it('wrongly typed fields get bad_frame naming the field', async () => {
    const peer = await RawPeer.open(server.url);
    await peer.hello();
    const res = await peer.request({ type: 'lookup', id: 5, query: 42 });
    assert.equal(res.code, 'bad_frame');
    assert.match(String(res.message), /query/);
    peer.close();
  });

  it('deeply nested frames are refused', async () => {
    const peer = await RawPeer.open(server.url);
    await peer.hello();
    let deep: unknown = 'x';
    for (let i = 0; i < 200; i++) deep = { a: deep };
    const res = await peer.request({ type: 'lookup', id: 6, query: deep } as never);
    assert.equal(res.code, 'bad_frame');
    peer.close();
  });

  it('frames before hello get hello_required; frames that need a login get login_required', async () => {
    const peer = await RawPeer.open(server.url);
    assert.equal((await peer.request({ type: 'ping', id: 1 })).code, 'hello_required');
    await peer.hello();
    const res = await peer.request({ type: 'ack', id: 2, seq: 1 });
    assert.equal(res.code, 'login_required');
    peer.close();
  });

  it('an unsupported protocol version is refused and the connection closed', async () => {
    const peer = await RawPeer.open(server.url);
    const res = await peer.request({ type: 'hello', id: 0, versions: [99] });
    assert.equal(res.code, 'unsupported_version');
    assert.equal((await peer.closed()).code, 1002);
  });

  it('an unknown subprotocol is refused at the handshake', async () => {
    const ws = new WebSocket(server.url, 'pmb.v9.xml');
    const status = await new Promise<number>((resolve) => {
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.on('error', () => resolve(-1));
    });
    assert.equal(status, 400);
    assert.ok(SUBPROTOCOLS.cbor);
  });

  it('a registration with an invalid signature is refused and writes nothing', async () => {
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

  it('bad nicknames are refused with bad_nickname', async () => {
    const id = await newIdentity();
    const peer = await RawPeer.open(server.url);
    await peer.hello();
    let n = 10;
    for (const nick of ['a', 'has space', '-dash', 'x'.repeat(40), 'émile', 'UPPER']) {
      const binding = await createRecord(id, {
        kind: 'binding',
        subject: id.fingerprint,
        seq: 1,
        prev: null,
        ts: Date.now(),
        expires: Date.now() + BINDING_TTL_MS,
        body: { nick, domain: 'a.test', registrar: server.fingerprint },
      });
      const res = await peer.request({ type: 'register', id: n++, binding, publicKey: id.publicKeyBytes });
      assert.equal(res.code, 'bad_nickname', `nick ${JSON.stringify(nick)}`);
    }
    peer.close();
  });

  it('a nickname is taken by its first owner; another key cannot squat it', async () => {
    const first = await connectUser(server, 'carol');
    await assert.rejects(connectUser(server, 'carol'), { code: 'nickname_taken' });
    first.close();
  });

  it('a send with a spoofed from is refused', async () => {
    const dave = await connectUser(server, 'dave');
    const erin = await connectUser(server, 'erin');
    const env = await dave.seal([(await dave.lookup('erin@a.test')).key], 'hi');
    await assert.rejects(dave.sendEnvelope({ ...env, from: erin.identity.fingerprint }), {
      code: 'forbidden',
    });
    dave.close();
    erin.close();
  });

  it('a flood of frames is rate limited and then cut off, while others are still served', async () => {
    const alice = await connectUser(server, 'flood-alice');
    const bob = await connectUser(server, 'flood-bob');
    const bobBox = inbox(bob);
    const peer = await RawPeer.open(server.url);
    await peer.hello();
    for (let i = 0; i < 400; i++) peer.send({ type: 'ping', id: 100 + i });
    const limited = await peer.next((f) => f.type === 'error' && f.code === 'rate_limited');
    assert.equal(limited.code, 'rate_limited');
    assert.equal((await peer.closed()).code, 1008);
    await alice.send('flood-bob@a.test', 'still here');
    await bobBox.waitFor(1);
    alice.close();
    bob.close();
  });

  it('too many connections from one address are refused with 429', async () => {
    const small = await startServer({ limits: { connectionsPerAddress: 8 } as never });
    const peers: RawPeer[] = [];
    for (let i = 0; i < 8; i++) peers.push(await RawPeer.open(small.url));
    const ws = new WebSocket(small.url, SUBPROTOCOLS.cbor);
    const status = await new Promise<number>((resolve) => {
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.on('open', () => resolve(101));
      ws.on('error', () => resolve(-1));
    });
    assert.equal(status, 429);
    peers[0]?.close();
    await peers[0]?.closed();
    await new Promise((r) => setTimeout(r, 50));
    await stillServes(small);
    for (const p of peers) p.close();
    await small.close();
  });
});
