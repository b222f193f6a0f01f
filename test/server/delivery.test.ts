import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { MemorySeenStore, PmbClient, type SeenStore } from '../../src/client/index.js';
import type { EncodingName } from '../../src/protocol/version.js';
import {
  capturingWebSocket,
  connectUser as connectWith,
  inbox,
  NodeWebSocket,
  startServer,
  type UserOptions,
} from '../helpers/servers.js';

type Server = Awaited<ReturnType<typeof startServer>>;

for (const encoding of ['cbor', 'json'] as EncodingName[]) {
  describe(`store-and-forward delivery (${encoding})`, () => {
    const connectUser = (s: Server, nick: string, opts: UserOptions = {}) =>
      connectWith(s, nick, { encoding, ...opts });
    let server: Server;
    before(async () => {
      server = await startServer();
    });
    after(() => server.close());

    it('every online device of the recipient gets every message, and the sender’s other device sees it too', async () => {
      const alicePhone = await connectUser(server, 'alice');
      const aliceLaptop = await connectUser(server, 'alice', {
        identity: alicePhone.identity,
        device: 'laptop',
        register: false,
      });
      const bobPhone = await connectUser(server, 'bob');
      const bobLaptop = await connectUser(server, 'bob', {
        identity: bobPhone.identity,
        device: 'laptop',
        register: false,
      });
      const boxes = [bobPhone, bobLaptop].map(inbox);
      const aliceLaptopBox = inbox(aliceLaptop);
      await alicePhone.send('bob@a.test', 'to both of your devices');
      for (const box of boxes) {
        await box.waitFor(1);
        assert.equal(box.messages[0]?.text, 'to both of your devices');
      }
      await aliceLaptopBox.waitFor(1);
      assert.equal(aliceLaptopBox.messages[0]?.outgoing, true);
      assert.equal(aliceLaptopBox.messages[0]?.text, 'to both of your devices');
      for (const c of [alicePhone, aliceLaptop, bobPhone, bobLaptop]) c.close();
    });

    it('an offline device gets what it missed at its next login, each device with its own cursor', async () => {
      const carol = await connectUser(server, 'carol');
      const danPhone = await connectUser(server, 'dan');
      const danLaptop = await connectUser(server, 'dan', {
        identity: danPhone.identity,
        device: 'laptop',
        register: false,
      });
      const phoneBox = inbox(danPhone);
      await carol.send('dan@a.test', 'one');
      await phoneBox.waitFor(1);
      danLaptop.close(); // the laptop goes offline having received "one" but maybe not acked it
      await carol.send('dan@a.test', 'two');
      await carol.send('dan@a.test', 'three');
      await phoneBox.waitFor(3);
      await danPhone.flushAcks();
      danPhone.close();
      const laptopAgain = await connectUser(server, 'dan', {
        identity: danPhone.identity,
        device: 'laptop',
        register: false,
      });
      const laptopBox = inbox(laptopAgain);
      await laptopAgain.waitSynced();
      const texts = laptopBox.messages.map((m) => m.text);
      assert.ok(texts.includes('two') && texts.includes('three'), `laptop got ${JSON.stringify(texts)}`);
      // The phone acknowledged everything: logging in again brings nothing new.
      await laptopAgain.flushAcks();
      const phoneAgain = await connectUser(server, 'dan', { identity: danPhone.identity, register: false });
      const phoneAgainBox = inbox(phoneAgain);
      await phoneAgain.waitSynced();
      assert.deepEqual(phoneAgainBox.messages, []);
      for (const c of [carol, laptopAgain, phoneAgain]) c.close();
    });

    it('mail sent while the recipient has never logged in waits for the first login', async () => {
      const erin = await connectUser(server, 'erin');
      const frank = await connectUser(server, 'frank');
      frank.close();
      await erin.send('frank@a.test', 'waiting for you');
      const frankBack = await connectUser(server, 'frank', { identity: frank.identity, register: false });
      const box = inbox(frankBack);
      await frankBack.waitSynced();
      assert.deepEqual(
        box.messages.map((m) => m.text),
        ['waiting for you'],
      );
      erin.close();
      frankBack.close();
    });

    it('a retried send with the same id is stored once and shown once', async () => {
      const gina = await connectUser(server, 'gina');
      const hank = await connectUser(server, 'hank');
      const box = inbox(hank);
      const env = await gina.seal([(await gina.lookup('hank@a.test')).key], 'only once');
      const first = await gina.sendEnvelope(env);
      const again = await gina.sendEnvelope(env);
      assert.equal(first.duplicate, false);
      assert.equal(again.duplicate, true);
      await gina.send('hank@a.test', 'marker');
      await box.waitFor(2);
      assert.deepEqual(
        box.messages.map((m) => m.text),
        ['only once', 'marker'],
      );
      // Once every device of both accounts has it, the mailbox lets it go, but a late retry is still a duplicate.
      await hank.flushAcks();
      await gina.flushAcks();
      const { store } = server.context;
      // Cursors are saved lazily (within 100 ms, or with the next batch of messages).
      const deadline = Date.now() + 3000;
      while (store.mailbox.after(hank.identity.fingerprint, 0, 10).length > 0 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.deepEqual(store.mailbox.after(hank.identity.fingerprint, 0, 10), []);
      assert.equal((await gina.sendEnvelope(env)).duplicate, true);
      gina.close();
      hank.close();
    });

    it('messages arrive in the order they were sent', async () => {
      const ivy = await connectUser(server, 'ivy');
      const jack = await connectUser(server, 'jack');
      const box = inbox(jack);
      const key = (await ivy.lookup('jack@a.test')).key;
      const envs = [];
      for (let i = 0; i < 30; i++) envs.push(await ivy.seal([key], `n${i}`));
      // Pipelined: all sends in flight at once.
      await Promise.all(envs.map((e) => ivy.sendEnvelope(e)));
      await box.waitFor(30);
      assert.deepEqual(
        box.messages.map((m) => m.text),
        envs.map((_, i) => `n${i}`),
      );
      ivy.close();
      jack.close();
    });

    it('lookup by nick@domain and by fingerprint returns the key, its verified binding and the server', async () => {
      const kim = await connectUser(server, 'kim');
      const byName = await kim.lookup('kim@a.test');
      assert.equal(byName.fingerprint, kim.identity.fingerprint);
      assert.deepEqual(byName.addresses, ['kim@a.test']);
      assert.equal(byName.server, 'a.test');
      const byFp = await kim.lookup(kim.identity.fingerprint);
      assert.deepEqual(byFp.addresses, ['kim@a.test']);
      await assert.rejects(kim.lookup('nobody@a.test'), { code: 'not_found' });
      kim.close();
    });
  });
}

describe('a device that cannot take a delivery right now', () => {
  it('does not acknowledge it (nor anything after it) and gets it again at its next login', async () => {
    const server = await startServer();
    try {
      const alice = await connectWith(server, 'alice');
      const bob = await connectWith(server, 'bob');
      let failing = true;
      const halted = new Promise<string>((resolve) => {
        bob.events.halted = (err) => resolve(err.code);
      });
      const closed = new Promise<void>((resolve) => {
        bob.events.close = () => resolve();
      });
      bob.events.message = () => {
        // The application's own store failed (a full disk, say).
        if (failing) throw new Error('disk full');
      };
      await alice.send('bob@a.test', 'first');
      await alice.send('bob@a.test', 'second');
      assert.equal(await halted, 'unavailable');
      await closed;
      failing = false;
      const again = await connectWith(server, 'bob', { identity: bob.identity, register: false });
      const box = inbox(again);
      await box.waitFor(2);
      assert.deepEqual(
        box.messages.map((m) => m.text),
        ['first', 'second'],
      );
      again.close();
      alice.close();
    } finally {
      await server.close();
    }
  });
});

describe('an app that showed a message and died before acknowledging it', () => {
  it('does not show it again when restarted with its seen-store, and acknowledges it', async () => {
    const server = await startServer();
    try {
      const alice = await connectWith(server, 'alice');
      // The app's durable store: it outlives the PmbClient instance (an app restart).
      const disk = new MemorySeenStore();
      const { WebSocket: Capturing, sockets } = capturingWebSocket();
      let dieAfterMarking = true;
      const seen: SeenStore = {
        has: (key) => disk.has(key),
        add: (key) => {
          disk.add(key);
          // The process dies between marking the message shown and acknowledging it.
          if (dieAfterMarking) sockets[0]?.terminate();
        },
      };
      const bob = await connectWith(server, 'bob', { WebSocket: Capturing, seen });
      const shown: string[] = [];
      const closed = new Promise<void>((resolve) => {
        bob.events.close = () => resolve();
      });
      bob.events.message = (m) => {
        shown.push(m.text ?? '');
      };
      await alice.send('bob@a.test', 'only once');
      await Promise.race([
        closed,
        new Promise((_, reject) =>
          setTimeout(() => reject(new Error('the message was never marked seen')), 10_000).unref(),
        ),
      ]);
      assert.deepEqual(shown, ['only once']);
      dieAfterMarking = false;

      // The restarted app: a new PmbClient with the same seen-store. The server never got the ack, so it
      // pushes the message again; the app acknowledges it without showing it.
      const again = await PmbClient.connect({
        url: server.url,
        WebSocket: NodeWebSocket,
        identity: bob.identity,
        device: 'dev1',
        seen,
      });
      const pushed: string[] = [];
      const handle = again.conn.events.deliver;
      again.conn.events.deliver = (f) => {
        pushed.push(f.envelope.id);
        handle?.(f);
      };
      again.events.message = (m) => {
        shown.push(m.text ?? '');
      };
      await again.login();
      await again.waitSynced();
      await again.flushAcks();
      assert.equal(pushed.length, 1, 'the server pushed it again');
      assert.deepEqual(shown, ['only once'], 'the user saw it once');
      again.close();

      // It was acknowledged: a third instance that remembers nothing gets nothing.
      const third = await connectWith(server, 'bob', { identity: bob.identity, register: false });
      const box = inbox(third);
      await third.waitSynced();
      assert.deepEqual(box.messages, []);
      third.close();
      alice.close();
    } finally {
      await server.close();
    }
  });
});
