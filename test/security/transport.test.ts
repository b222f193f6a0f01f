import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { DEFAULT_LIMITS } from '../../src/protocol/limits.js';
import { SUBPROTOCOLS } from '../../src/protocol/version.js';
import { RawPeer } from '../helpers/raw.js';
import { capturingWebSocket, connectUser, inbox, startServer } from '../helpers/servers.js';

type Server = Awaited<ReturnType<typeof startServer>>;

/** The attacker's address; clients that must keep being served connect from 127.0.0.1. */
const ATTACKER = '127.0.0.2';
const HANDSHAKE_MS = 1500;
const LOGIN_MS = 2000;
/** ws waits 30 s for a close handshake; the gateway destroys the socket after 5 s (docs/limits.md). */
const CLOSE_GRACE_MS = 5000;

async function stillServes(server: Server): Promise<void> {
  const peer = await RawPeer.open(server.url);
  assert.equal((await peer.hello()).type, 'hello.ok');
  peer.close();
}

/** A bare TCP connection from `from`; `closed` resolves with the ms from connect to close, `data` fills up. */
async function tcp(server: Server, from = ATTACKER) {
  const socket: Socket = connect({ host: '127.0.0.1', port: server.port, localAddress: from });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('error', reject);
  });
  const opened = Date.now();
  const chunks: Buffer[] = [];
  socket.on('data', (d: Buffer) => chunks.push(d));
  socket.on('error', () => {});
  const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now() - opened)));
  return { socket, closed, data: () => Buffer.concat(chunks) };
}

/** Write `bytes` one at a time every `everyMs` while the socket is open. */
function trickle(socket: Socket, bytes: Buffer, everyMs: number): void {
  let i = 0;
  const timer = setInterval(() => {
    if (socket.destroyed || i >= bytes.length) clearInterval(timer);
    else socket.write(bytes.subarray(i, ++i));
  }, everyMs);
}

function upgradeRequest(server: Server): Buffer {
  return Buffer.from(
    'GET / HTTP/1.1\r\n' +
      `Host: 127.0.0.1:${server.port}\r\n` +
      'Upgrade: websocket\r\nConnection: Upgrade\r\n' +
      `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\n` +
      `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ${SUBPROTOCOLS.cbor}\r\n\r\n`,
  );
}

async function connections(server: Server): Promise<number> {
  const res = await fetch(`${server.url.replace('ws://', 'http://')}/health`);
  return ((await res.json()) as { connections: number }).connections;
}

describe('transport: floods and slowloris', () => {
  let server: Server;
  before(async () => {
    server = await startServer({
      limits: {
        framesPerSecond: 50,
        handshakeTimeoutMs: HANDSHAKE_MS,
        loginTimeoutMs: LOGIN_MS,
        connectionsPerAddress: 16,
      } as never,
    });
  });
  after(() => server.close());

  it('frame flood: a connection sending faster than framesPerSecond is answered rate_limited, then cut off (1008), while others are still served', async () => {
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

  it('too many connections per address: the upgrade beyond connectionsPerAddress is refused with 429, and a closed connection frees its slot', async () => {
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

  it('slowloris, silent connections: TCP connections that send nothing are closed after handshakeTimeoutMs, and others are served meanwhile', async () => {
    const silent = await Promise.all(Array.from({ length: 5 }, () => tcp(server)));
    const alice = await connectUser(server, 'quiet-alice');
    const bob = await connectUser(server, 'quiet-bob');
    const bobBox = inbox(bob);
    await alice.send('quiet-bob@a.test', 'not blocked');
    await bobBox.waitFor(1);
    const after = await Promise.all(silent.map((s) => s.closed));
    for (const ms of after) {
      assert.ok(ms >= HANDSHAKE_MS - 100 && ms < HANDSHAKE_MS + 2000, `closed after ${ms} ms`);
    }
    assert.deepEqual(
      silent.map((s) => s.data().length),
      [0, 0, 0, 0, 0],
      'dropped without an answer',
    );
    alice.close();
    bob.close();
  });

  it('slowloris, trickled upgrade: an upgrade request sent one byte every 20 ms is dropped at handshakeTimeoutMs although bytes keep coming', async () => {
    const slow = await tcp(server);
    const request = upgradeRequest(server);
    assert.ok(request.length * 20 > HANDSHAKE_MS * 2, 'the request would take longer than the limit');
    trickle(slow.socket, request, 20);
    const ms = await slow.closed;
    assert.ok(ms >= HANDSHAKE_MS - 100 && ms < HANDSHAKE_MS + 2000, `closed after ${ms} ms`);
    assert.equal(slow.data().length, 0, 'no upgrade happened');
    await stillServes(server);
  });

  it('slowloris, half-open flood: beyond connectionsPerAddress unfinished handshakes from one address, new connections from it are dropped at once while other addresses are served', async () => {
    const limit = server.config.limits.connectionsPerAddress;
    const held = await Promise.all(Array.from({ length: limit }, () => tcp(server)));
    await new Promise((r) => setTimeout(r, 100));
    const extra = await tcp(server);
    const ms = await extra.closed;
    assert.ok(ms < 500, `the connection over the limit was closed after ${ms} ms`);
    await stillServes(server);
    // Once the held ones time out, the address may connect again.
    await Promise.all(held.map((h) => h.closed));
    const again = await tcp(server);
    again.socket.write(upgradeRequest(server));
    await new Promise((r) => setTimeout(r, 300));
    assert.match(again.data().toString('latin1'), /^HTTP\/1\.1 101 /);
    again.socket.destroy();
  });

  it('silent WebSocket: a connection that is upgraded but never logs in gets login_required (no id) and is closed (1008) at loginTimeoutMs', async () => {
    const mute = await RawPeer.open(server.url);
    const helloOnly = await RawPeer.open(server.url);
    await helloOnly.hello();
    const started = Date.now();
    for (const peer of [mute, helloOnly]) {
      const err = await peer.next((f) => f.type === 'error', LOGIN_MS + 3000);
      assert.equal(err.code, 'login_required');
      assert.equal(err.id, undefined);
      assert.equal((await peer.closed()).code, 1008);
    }
    assert.ok(Date.now() - started < LOGIN_MS + 2000);
  });

  it('slowloris, trickled frame: a WebSocket frame sent byte by byte before login is cut at loginTimeoutMs, and the socket is destroyed within the close grace', async () => {
    const before = await connections(server);
    const slow = await tcp(server);
    slow.socket.write(upgradeRequest(server));
    await new Promise((r) => setTimeout(r, 200));
    assert.match(slow.data().toString('latin1'), /^HTTP\/1\.1 101 /);
    const upgraded = slow.data().length;
    // A masked binary frame announcing 1000 bytes, then its payload, one byte every 50 ms.
    const frame = Buffer.concat([
      Buffer.from([0x82, 0x80 | 126, 0x03, 0xe8]),
      randomBytes(4),
      Buffer.alloc(1000, 0x61),
    ]);
    trickle(slow.socket, frame, 50);
    const ms = await slow.closed;
    assert.ok(ms >= LOGIN_MS && ms < LOGIN_MS + CLOSE_GRACE_MS + 2000, `socket closed after ${ms} ms`);
    const sent = slow.data().subarray(upgraded);
    assert.ok(sent.includes(0x88), 'the server sent a close frame before destroying the socket');
    assert.equal(await connections(server), before, 'the connection no longer counts');
    await stillServes(server);
  });
});

describe('transport: stalled peers', () => {
  it('a stalled logged-in client (its socket stopped reading) is dropped after two heartbeats, while others are served', async () => {
    const HEARTBEAT_MS = 200;
    const server = await startServer({ limits: { ...DEFAULT_LIMITS, heartbeatMs: HEARTBEAT_MS } });
    try {
      const alice = await connectUser(server, 'alice');
      const bob = await connectUser(server, 'bob');
      const box = inbox(bob);
      const { WebSocket: Capturing, sockets } = capturingWebSocket();
      const mallory = await connectUser(server, 'mallory', { WebSocket: Capturing });
      assert.equal(await connections(server), 3);
      // Mallory's app hangs: her socket is no longer read, so pings pile up unanswered (ws answers pings
      // by itself only while it reads). Her session, window and buffers must not be kept forever.
      const socket = (sockets[0] as unknown as { _socket: Socket })._socket;
      socket.pause();
      const stalled = Date.now();
      await alice.send('bob@a.test', 'while mallory hangs');
      await box.waitFor(1);
      while ((await connections(server)) > 2) {
        assert.ok(Date.now() - stalled < 5000, 'the stalled client is dropped within 5 s');
        await new Promise((r) => setTimeout(r, 20));
      }
      const elapsed = Date.now() - stalled;
      // Silent for two intervals: at least one interval after her last pong, which came before the stall.
      assert.ok(elapsed >= HEARTBEAT_MS, `dropped after ${elapsed} ms, before two heartbeats`);
      // Healthy clients answered every ping, over several beats.
      await new Promise((r) => setTimeout(r, 3 * HEARTBEAT_MS));
      assert.equal(alice.conn.closed, false, 'a healthy client survives the heartbeat');
      assert.equal(bob.conn.closed, false);
      await alice.send('bob@a.test', 'still here');
      await box.waitFor(2);
      assert.equal(await connections(server), 2);
      socket.resume();
      mallory.close();
      alice.close();
      bob.close();
    } finally {
      await server.close();
    }
  });
});
