import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { connectUser, inbox, startServer } from '../helpers/servers.js';

for (const encoding of ['cbor', 'json'] as const) {
  describe(`1:1 messaging over ${encoding}`, () => {
    it('alice and bob register, log in and exchange end-to-end encrypted messages', async () => {
      const server = await startServer();
      try {
        const alice = await connectUser(server, 'alice', { encoding });
        const bob = await connectUser(server, 'bob', { encoding });
        const bobBox = inbox(bob);
        const aliceBox = inbox(alice);
        const sent = await alice.send('bob@a.test', 'hello bob');
        assert.equal(sent.duplicate, false);
        await bobBox.waitFor(1);
        assert.equal(bobBox.messages[0]?.text, 'hello bob');
        assert.equal(bobBox.messages[0]?.from, alice.identity.fingerprint);
        assert.equal(bobBox.messages[0]?.outgoing, false);
        await bob.send('alice@a.test', 'hi alice');
        await aliceBox.waitFor(1);
        // The sending device is not sent its own message back (its other devices are: see delivery tests).
        assert.deepEqual(
          aliceBox.messages.map((m) => [m.text, m.outgoing]),
          [['hi alice', false]],
        );
        alice.close();
        bob.close();
      } finally {
        await server.close();
      }
    });
  });
}
