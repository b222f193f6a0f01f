import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { describe, it } from 'node:test';
import type WebSocket from 'ws';
import { DEFAULT_LIMITS } from '../../src/protocol/limits.js';
import type { PmbServer } from '../../src/server/index.js';
import { startNetwork } from '../helpers/network.js';
import { RawPeer } from '../helpers/raw.js';
import { rawLink } from '../helpers/raw-link.js';
import { capturingWebSocket, connectUser, inbox, startServer } from '../helpers/servers.js';
import { until } from '../helpers/wait.js';

/**
 * The first bytes of a masked binary frame announcing 1000 bytes of payload, and 100 of them: the server
 * must wait for the rest, which never comes. (Anything the peer's ws writes afterwards, a pong or a close,
 * is read by the server as more of that payload.)
 */
function halfFrame(): Buffer {
  const header = Buffer.from([0x82, 0x80 | 126, 0x03, 0xe8, 1, 2, 3, 4]);
  return Buffer.concat([header, Buffer.alloc(100, 0x55)]);
}

function stall(ws: WebSocket): void {
  (ws as unknown as { _socket: Socket })._socket.write(halfFrame());
}

/** Two users keep talking: `n` messages from a to b arrive, in order. */
async function talk(
  a: Awaited<ReturnType<typeof connectUser>>,
  box: ReturnType<typeof inbox>,
  to: string,
  n: number,
): Promise<void> {
  const before = box.messages.length;
  const texts = Array.from({ length: n }, (_, i) => `still here ${before + i}`);
  for (const t of texts) await a.send(to, t);
  await box.waitFor(before + n, 10_000);
  assert.deepEqual(
    box.messages.slice(before).map((m) => m.text),
    texts,
  );
}

describe('a peer that stalls in the middle of a frame', () => {
  it('a client: others are served meanwhile; the heartbeat closes it (before login: the login timeout)', async () => {
    // A short heartbeat (limits.heartbeatMs, default 30 s); 400 ms, as on the link tests, holds under load.
    const server: PmbServer & { dir: string } = await startServer({
      limits: { ...DEFAULT_LIMITS, heartbeatMs: 400 },
    });
    // Before login the login timeout applies: a server of its own with a short one (users need longer).
    const strict: PmbServer & { dir: string } = await startServer({
      limits: { ...DEFAULT_LIMITS, loginTimeoutMs: 300 },
    });
    try {
      const alice = await connectUser(server, 'alice');
      const bob = await connectUser(server, 'bob');
      const box = inbox(bob);
      const { WebSocket: Capturing, sockets } = capturingWebSocket();
      const mallory = await connectUser(server, 'mallory', { WebSocket: Capturing });
      let malloryClosed = false;
      mallory.events.close = () => {
        malloryClosed = true;
      };
      stall(sockets[0] as WebSocket);

      // Before login: half a frame instead of a hello; the login timeout ends it (then 5 s of close grace).
      const early = await RawPeer.open(strict.url);
      stall(early.ws);

      await talk(alice, box, 'bob@a.test', 20);
      await early.closed(10_000);

      // Every beat pings everyone; the healthy answer, mallory's pongs are lost inside her frame: after two
      // silent intervals she is dropped.
      await until(() => malloryClosed, 10_000, 'the stalled client to be closed');
      assert.equal(alice.conn.closed, false, 'a healthy client survives the heartbeat');
      assert.equal(bob.conn.closed, false);
      await talk(alice, box, 'bob@a.test', 5);
      alice.close();
      bob.close();
    } finally {
      await server.close();
      await strict.close();
    }
  });

  it('a server link: mail between two other servers flows; the link heartbeat closes it', async () => {
    await using net = await startNetwork(3, { links: { heartbeatMs: 300 } });
    const [s1, s2, s3] = net.servers as [PmbServer, PmbServer, PmbServer];
    const alice = await connectUser(s1, 'alice');
    const bob = await connectUser(s2, 'bob');
    const box = inbox(bob);
    await alice.lookup('bob@s2.test');
    // A raw peer holding s3's key opens a link to s2 and stalls mid-frame.
    const raw = await rawLink(s2, { identity: s3.context.identity, record: s3.context.serverRecord });
    await until(() => s2.context.links.get('s3.test')?.open === true, 5000, 'the raw link to open');
    stall(raw.peer.ws);
    await talk(alice, box, 'bob@s2.test', 20);
    await raw.peer.closed(5000);
    await until(() => !s2.context.links.get('s3.test')?.open, 5000, 's2 to drop the stalled link');
    await talk(alice, box, 'bob@s2.test', 5);
    alice.close();
    bob.close();
  });
});
