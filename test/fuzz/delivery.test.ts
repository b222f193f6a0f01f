import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import WebSocket from 'ws';
import { PmbClient, type ReceivedMessage, type WebSocketFactory } from '../../src/client/index.js';
import type { Identity } from '../../src/crypto/index.js';
import type { Envelope } from '../../src/protocol/frames.js';
import type { EncodingName } from '../../src/protocol/version.js';
import type { PmbServer } from '../../src/server/index.js';
import { startNetwork, type TestNetwork } from '../helpers/network.js';
import { connectUser, newIdentity, startServer } from '../helpers/servers.js';
import { until } from '../helpers/wait.js';
import { checkProperty } from './fuzz.js';

/*
 * The delivery interaction fuzzer (in the spirit of libsignal's): random sequences of what users and
 * networks do (send, drop the connection right after sending, resend the same envelope, disconnect,
 * reconnect as the same or another device, restart a server) over three users on one server, and over two
 * federated servers. At the end every device of every user comes back online and:
 * - every message whose send was acknowledged was received and decrypted by each of its recipients (at the
 *   user level: the SDK dedupes by message id across reconnects, any device of the user counts);
 * - nothing was received that was not sent (text, sender and recipients as sent), nothing failed to decrypt;
 * - on one connection the server pushed each mailbox seq once, in increasing order, and the SDK showed
 *   each message once;
 * - on one connection, messages of one sender arrive in the order they were stored: a message stored
 *   (acknowledged) before another was first sent comes first.
 */

const USERS = ['alice', 'bob', 'carol'] as const;

type Action =
  | { a: 'send'; from: number; to: number; text: string }
  | { a: 'drop'; from: number; to: number; text: string; how: 'terminate' | 'tick' | 'close' }
  | { a: 'burst'; from: number; to: number; texts: string[] }
  | { a: 'resend'; pick: number }
  | { a: 'flap'; user: number; device: number; ms: number }
  | { a: 'disconnect'; user: number; graceful: boolean }
  | { a: 'reconnect'; user: number; device: number; encoding: EncodingName }
  | { a: 'restart'; server: number }
  | { a: 'wait'; ms: number };

/** One server or a federation, seen by the fuzzer the same way. */
interface World {
  readonly servers: number;
  url(server: number): string;
  /** Server index hosting each user. */
  home(user: number): number;
  restart(server: number): Promise<void>;
  /** Let everything in flight between servers arrive (outboxes empty). */
  settle(): Promise<void>;
  close(): Promise<void>;
}

/** A `ws` WebSocket that remembers the last one opened, so a test can cut it without a close handshake. */
class CapturingWebSocket extends WebSocket {
  static last: CapturingWebSocket | undefined;
  constructor(url: string, protocols?: string | string[]) {
    super(url, protocols);
    CapturingWebSocket.last = this;
  }
}

interface Conn {
  n: number;
  user: number;
  device: string;
  client: PmbClient;
  ws: WebSocket;
  /** deliver frames as they arrived: mailbox seq and message id. */
  pushed: { seq: number; id: string }[];
  shown: ReceivedMessage[];
  rejected: string[];
}

interface Sent {
  id: string;
  from: number;
  to: number;
  text: string;
  envelope: Envelope;
  /** Action index of the first attempt: it cannot be stored earlier. */
  lo: number;
  /** Action index by which it is surely stored (an acknowledged attempt), else Infinity. */
  hi: number;
  acked: boolean;
  attempts: string[];
}

const fast = { links: { backoff: { initialMs: 50, maxMs: 400 } } };

async function singleServer(): Promise<World> {
  const dir = await mkdtemp(join(tmpdir(), 'pmb-fuzz-'));
  let server = await startServer({ dataDir: dir });
  const port = server.port;
  return {
    servers: 1,
    url: () => server.url,
    home: () => 0,
    async restart() {
      await server.close();
      server = await startServer({ dataDir: dir, port });
    },
    async settle() {},
    async close() {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function federation(): Promise<World> {
  const net: TestNetwork = await startNetwork(2, fast);
  const [s1] = net.servers as [PmbServer];
  await s1.context.links.connect('s2.test');
  return {
    servers: 2,
    url: (i) => (net.servers[i] as PmbServer).url,
    // alice and carol on s1, bob on s2.
    home: (u) => (u === 1 ? 1 : 0),
    async restart(i) {
      await net.restart(i);
    },
    async settle() {
      await until(
        () => net.servers.every((s) => s.context.mail.outbox.pending() === 0),
        30_000,
        'the outboxes to empty',
      );
    },
    close: () => net.close(),
  };
}

const actionArb = (servers: number): fc.Arbitrary<Action> => {
  const user = fc.nat({ max: USERS.length - 1 });
  const text = fc.oneof(fc.string({ maxLength: 24 }), fc.string({ unit: 'grapheme', maxLength: 8 }));
  const pair = fc
    .tuple(user, fc.nat({ max: USERS.length - 2 }))
    .map(([from, k]) => ({ from, to: (from + 1 + k) % USERS.length }));
  return fc.oneof(
    {
      weight: 8,
      arbitrary: fc.record({ p: pair, text }).map(({ p, text }): Action => ({ a: 'send', ...p, text })),
    },
    {
      weight: 2,
      arbitrary: fc
        .record({ p: pair, text, how: fc.constantFrom('terminate', 'tick', 'close') as fc.Arbitrary<'tick'> })
        .map(({ p, text, how }): Action => ({ a: 'drop', ...p, text, how })),
    },
    {
      // Several sends on one connection without waiting for the answers in between.
      weight: 2,
      arbitrary: fc
        .record({ p: pair, texts: fc.array(text, { minLength: 2, maxLength: 8 }) })
        .map(({ p, texts }): Action => ({ a: 'burst', ...p, texts })),
    },
    { weight: 2, arbitrary: fc.nat().map((pick): Action => ({ a: 'resend', pick })) },
    {
      // Log in and lose the connection a moment later, while the backlog is being pushed and acknowledged.
      weight: 2,
      arbitrary: fc
        .record({ user, device: fc.nat({ max: 2 }), ms: fc.nat({ max: 30 }) })
        .map((r): Action => ({ a: 'flap', ...r })),
    },
    {
      weight: 2,
      arbitrary: fc.record({ user, graceful: fc.boolean() }).map((r): Action => ({ a: 'disconnect', ...r })),
    },
    {
      weight: 2,
      arbitrary: fc
        .record({
          user,
          device: fc.nat({ max: 2 }),
          encoding: fc.constantFrom('cbor', 'json') as fc.Arbitrary<EncodingName>,
        })
        .map((r): Action => ({ a: 'reconnect', ...r })),
    },
    {
      weight: 1,
      arbitrary: fc.nat({ max: servers - 1 }).map((server): Action => ({ a: 'restart', server })),
    },
    { weight: 1, arbitrary: fc.nat({ max: 40 }).map((ms): Action => ({ a: 'wait', ms })) },
  );
};

async function runSequence(makeWorld: () => Promise<World>, actions: Action[]): Promise<void> {
  const world = await makeWorld();
  const identities: Identity[] = [];
  const conns: Conn[] = [];
  const online: (Conn | undefined)[] = USERS.map(() => undefined);
  /** Per user: each device used and the step of its first login (its cursor starts at the head then). */
  const devices = USERS.map(() => new Map<string, number>([['d0', 0]]));
  const sent: Sent[] = [];
  let step = 0;
  try {
    for (const [u, nick] of USERS.entries()) {
      const identity = await newIdentity();
      identities.push(identity);
      const c = await connectUser({ url: world.url(world.home(u)) }, nick, { identity, device: 'd0' });
      await c.flushAcks();
      c.close();
    }
    if (world.servers > 1) {
      // Every server knows every user before anyone writes (gossip over the link).
      await world.settle();
      await new Promise((r) => setTimeout(r, 200));
    }

    const open = async (u: number, device: string, encoding: EncodingName = 'cbor'): Promise<Conn> => {
      const client = await PmbClient.connect({
        url: world.url(world.home(u)),
        WebSocket: CapturingWebSocket as unknown as WebSocketFactory,
        identity: identities[u] as Identity,
        device,
        encoding,
      });
      const ws = CapturingWebSocket.last as CapturingWebSocket;
      const conn: Conn = {
        n: conns.length,
        user: u,
        device,
        client,
        ws,
        pushed: [],
        shown: [],
        rejected: [],
      };
      conns.push(conn);
      // Hooked before login: the backlog is pushed right after it.
      const deliver = client.conn.events.deliver;
      client.conn.events.deliver = (f) => {
        conn.pushed.push({ seq: f.seq, id: f.envelope.id });
        deliver?.(f);
      };
      client.events.message = (m) => {
        conn.shown.push(m);
      };
      client.events.rejected = (env, err) => {
        // The connection closing under a delivery (the sender's lookup fails) is not the message's fault:
        // it was not acknowledged and comes again at the next login.
        if (err.code === 'unavailable' && client.conn.closed) return;
        conn.rejected.push(`${env.id}: ${err.code} ${err.message}`);
      };
      await client.login();
      if (!devices[u]?.has(device)) devices[u]?.set(device, step);
      online[u] = conn;
      return conn;
    };
    const isOpen = (c: Conn | undefined): c is Conn =>
      c !== undefined && !c.client.conn.closed && c.ws.readyState === WebSocket.OPEN;
    const ensureOnline = async (u: number): Promise<Conn> => {
      const c = online[u];
      if (isOpen(c)) return c;
      return open(u, online[u]?.device ?? 'd0');
    };
    /** A new message from `from` to `to`, sealed now and recorded as sent at this step. */
    const seal = async (c: Conn, from: number, to: number, text: string): Promise<Sent> => {
      const envelope = await c.client.seal([identities[to] as Identity], text);
      const m: Sent = {
        id: envelope.id,
        from,
        to,
        text,
        envelope,
        lo: step,
        hi: Number.POSITIVE_INFINITY,
        acked: false,
        attempts: [],
      };
      sent.push(m);
      return m;
    };
    const attempt = async (m: Sent, c: Conn, drop?: 'terminate' | 'tick' | 'close'): Promise<void> => {
      const at = step;
      const answer = c.client.sendEnvelope(m.envelope);
      answer.catch(() => {}); // awaited below; handled now so a quick rejection is not reported unhandled
      if (drop) {
        if (drop === 'tick') await new Promise((r) => setImmediate(r));
        if (drop === 'close') c.client.close();
        else c.ws.terminate();
      }
      try {
        const r = await answer;
        m.acked = true;
        m.attempts.push(`${at}:${r.duplicate ? 'dup' : 'new'}`);
        if (r.duplicate) m.hi = Math.min(m.hi, at);
        else {
          m.lo = at;
          m.hi = at;
        }
      } catch (err) {
        m.attempts.push(`${at}:${(err as { code?: string }).code ?? 'error'}`);
      }
    };

    for (const action of actions) {
      step++;
      switch (action.a) {
        case 'send':
        case 'drop': {
          const c = await ensureOnline(action.from);
          const m = await seal(c, action.from, action.to, action.text);
          await attempt(m, c, action.a === 'drop' ? action.how : undefined);
          break;
        }
        case 'burst': {
          const c = await ensureOnline(action.from);
          const batch: Sent[] = [];
          for (const text of action.texts) {
            batch.push(await seal(c, action.from, action.to, text));
          }
          // Answers may come in any order; all of the batch is stored at this step, in no promised order.
          await Promise.all(batch.map((m) => attempt(m, c)));
          break;
        }
        case 'flap': {
          const c = online[action.user];
          if (isOpen(c)) c.client.close();
          const conn = await open(action.user, `d${action.device}`);
          await new Promise((r) => setTimeout(r, action.ms));
          conn.ws.terminate();
          break;
        }
        case 'resend': {
          if (sent.length === 0) break;
          const m = sent[action.pick % sent.length] as Sent;
          await attempt(m, await ensureOnline(m.from));
          break;
        }
        case 'disconnect': {
          const c = online[action.user];
          if (!isOpen(c)) break;
          if (action.graceful) {
            await c.client.flushAcks();
            c.client.close();
          } else c.ws.terminate();
          break;
        }
        case 'reconnect': {
          const c = online[action.user];
          if (isOpen(c)) c.client.close();
          await open(action.user, `d${action.device}`, action.encoding);
          break;
        }
        case 'restart':
          await world.restart(action.server);
          break;
        case 'wait':
          await new Promise((r) => setTimeout(r, action.ms));
          break;
      }
    }

    // Everyone comes back: every device each user ever used, until each has its backlog.
    await world.settle();
    for (const [u] of USERS.entries()) {
      for (const device of (devices[u] as Map<string, number>).keys()) {
        const c = online[u];
        if (isOpen(c)) c.client.close();
        const conn = await open(u, device);
        await conn.client.waitSynced();
        await conn.client.flushAcks();
      }
    }
    const shownOn = (u: number, device: string) =>
      new Set(
        conns.filter((c) => c.user === u && c.device === device).flatMap((c) => c.shown.map((m) => m.id)),
      );
    const shownTo = (u: number) =>
      new Set(conns.filter((c) => c.user === u).flatMap((c) => c.shown.map((m) => m.id)));
    await until(
      () =>
        sent.every(
          (m) =>
            !m.acked ||
            [...(devices[m.to] as Map<string, number>)].every(
              ([device, since]) => m.lo <= since || shownOn(m.to, device).has(m.id),
            ),
        ),
      20_000,
      'every acknowledged message to be received',
    ).catch(() => {});

    const byId = new Map(sent.map((m) => [m.id, m]));
    const log = () =>
      JSON.stringify(
        sent.map((m) => ({
          id: m.id.slice(0, 6),
          from: m.from,
          to: m.to,
          lo: m.lo,
          hi: m.hi,
          attempts: m.attempts,
        })),
      );
    for (const m of sent) {
      if (m.acked) {
        assert.ok(
          shownTo(m.to).has(m.id),
          `acknowledged message ${m.id} never reached ${USERS[m.to]}: ${log()}`,
        );
      }
    }
    // Each device gets every message stored after its first login (10.3), whatever its connections went
    // through: it is not enough that another device of the user got it.
    for (const [u, used] of devices.entries()) {
      for (const [device, since] of used) {
        const shown = new Set(
          conns.filter((c) => c.user === u && c.device === device).flatMap((c) => c.shown.map((m) => m.id)),
        );
        for (const m of sent) {
          if (m.acked && m.to === u && m.lo > since) {
            assert.ok(shown.has(m.id), `${USERS[u]}/${device} (since ${since}) never got ${m.id}: ${log()}`);
          }
        }
      }
    }
    for (const c of conns) {
      const who = `${USERS[c.user]}/${c.device} (connection ${c.n})`;
      assert.deepEqual(c.rejected, [], `${who} could not open messages`);
      for (let i = 1; i < c.pushed.length; i++) {
        const [prev, cur] = [c.pushed[i - 1], c.pushed[i]] as [{ seq: number }, { seq: number }];
        assert.ok(cur.seq > prev.seq, `${who}: seq ${cur.seq} pushed after ${prev.seq}`);
      }
      const ids = c.shown.map((m) => m.id);
      assert.equal(new Set(ids).size, ids.length, `${who} was shown a message twice`);
      for (const shown of c.shown) {
        const m = byId.get(shown.id);
        assert.ok(m, `${who} received ${shown.id}, which nobody sent`);
        const fromFp = (identities[m.from] as Identity).fingerprint;
        assert.equal(shown.from, fromFp, `${who}: sender of ${shown.id}`);
        assert.equal(shown.text, m.text, `${who}: text of ${shown.id}`);
        assert.deepEqual(shown.to, [(identities[m.to] as Identity).fingerprint]);
        assert.ok(
          c.user === m.to || (c.user === m.from && shown.outgoing),
          `${who} got ${shown.id} for another`,
        );
      }
      // Per sender, stored-before means shown-before.
      for (let i = 0; i < c.shown.length; i++) {
        for (let j = i + 1; j < c.shown.length; j++) {
          const a = byId.get((c.shown[i] as ReceivedMessage).id) as Sent;
          const b = byId.get((c.shown[j] as ReceivedMessage).id) as Sent;
          if (a.from !== b.from) continue;
          assert.ok(
            !(b.hi < a.lo),
            `${who}: ${b.id} (stored by ${b.hi}) shown after ${a.id} (sent at ${a.lo}): ${log()}`,
          );
        }
      }
    }
  } finally {
    for (const c of conns) c.client.close();
    await world.close();
  }
}

describe('fuzz: delivery interactions', () => {
  it('one server, three users: every acknowledged message arrives once, in order, intact', async () => {
    await checkProperty(
      'delivery: one server',
      fc.asyncProperty(fc.array(actionArb(1), { minLength: 3, maxLength: 25 }), (actions) =>
        runSequence(singleServer, actions),
      ),
      { runs: 15, shrink: false },
    );
  });

  it('two federated servers (alice and carol on s1, bob on s2): the same across the link', async () => {
    await checkProperty(
      'delivery: federation',
      fc.asyncProperty(fc.array(actionArb(2), { minLength: 3, maxLength: 25 }), (actions) =>
        runSequence(federation, actions),
      ),
      { runs: 8, shrink: false },
    );
  });
});
