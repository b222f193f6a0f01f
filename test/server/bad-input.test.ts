import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { createRecord } from '../../src/crypto/index.js';
import { encodeCbor } from '../../src/protocol/codec.js';
import { BINDING_TTL_MS } from '../../src/protocol/records.js';
import { SUBPROTOCOLS } from '../../src/protocol/version.js';
import { RawPeer } from '../helpers/raw.js';
import { newIdentity, startServer } from '../helpers/servers.js';

type Server = Awaited<ReturnType<typeof startServer>>;

async function stillServes(server: Server): Promise<void> {
  const peer = await RawPeer.open(server.url);
  assert.equal((await peer.hello()).type, 'hello.ok');
  peer.close();
}

describe('bad input gets a typed error and loses nothing', () => {
  let server: Server;
  before(async () => {
    server = await startServer({ limits: { maxFrameBytes: 64 * 1024 } as never });
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
});
