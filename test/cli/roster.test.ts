import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startServer } from '../helpers/servers.js';
import { cliSandbox, jsonLines } from './pmb.js';

describe('pmb chats and pmb roster', () => {
  it('chats are sorted by last message; the roster keeps contacts in groups', async () => {
    const server = await startServer({ domain: 'a.test', registration: 'open' });
    await using cli = await cliSandbox();
    try {
      await Promise.all(
        ['alice', 'bob', 'carol'].map((u) => cli.ok(u, ['register', `${u}@a.test`, '--server', server.url])),
      );
      await cli.ok('bob', ['send', 'alice@a.test', 'hi alice, from bob']);
      await cli.ok('carol', ['send', 'alice@a.test', 'carol here']);
      // Alice's send session receives both messages meanwhile: stored unread, not shown.
      const sent = await cli.ok('alice', ['send', 'bob@a.test', 'later, bob']);
      assert.match(sent.stderr, /2 new messages waiting: pmb inbox/);

      const chatsJson = async () =>
        JSON.parse((await cli.ok('alice', ['chats', '--json'])).stdout) as Record<string, unknown>[];
      assert.deepEqual(
        (await chatsJson()).map((c) => [c.address, c.lastText, c.lastOutgoing, c.count, c.unread]),
        [
          ['bob@a.test', 'later, bob', true, 2, 1],
          ['carol@a.test', 'carol here', false, 1, 1],
        ],
      );
      const human = (await cli.ok('alice', ['chats'])).stdout.trim().split('\n');
      assert.equal(human.length, 2);
      assert.match(human[0] ?? '', /^bob@a\.test +\[\d\d:\d\d\] me: later, bob {2}\(1 new\)$/);
      assert.match(human[1] ?? '', /^carol@a\.test +\[\d\d:\d\d\] carol here {2}\(1 new\)$/);

      // inbox shows the unread ones and marks them read.
      const inbox = (await cli.ok('alice', ['inbox'])).stdout;
      assert.match(inbox, /bob@a\.test: hi alice, from bob\n.*carol@a\.test: carol here\n$/);
      assert.deepEqual(
        (await chatsJson()).map((c) => c.unread),
        [0, 0],
      );

      // Roster: categories in alphabetical order, contacts by name inside each.
      await cli.ok('alice', ['roster', 'add', 'carol@a.test', '--name', 'Carol']);
      const added = jsonLines(
        (await cli.ok('alice', ['roster', 'add', 'bob@a.test', '--group', 'Work', '--json'])).stdout,
      )[0];
      assert.equal(added?.address, 'bob@a.test');
      assert.match(added?.fingerprint as string, /^[0-9a-f]{40}$/);
      assert.equal(added?.group, 'Work');

      const list = async () =>
        JSON.parse((await cli.ok('alice', ['roster', '--json'])).stdout) as {
          group: string;
          contacts: { address: string; name: string | null }[];
        }[];
      assert.deepEqual(
        (await list()).map((g) => [g.group, g.contacts.map((c) => c.address)]),
        [
          ['Contacts', ['carol@a.test']],
          ['Work', ['bob@a.test']],
        ],
      );

      // Moving by name; the chat list shows the roster name.
      await cli.ok('alice', ['roster', 'move', 'Carol', '--group', 'Family']);
      await cli.ok('alice', ['roster', 'move', 'bob@a.test', '--group', 'Family']);
      const text = (await cli.ok('alice', ['roster'])).stdout;
      assert.equal(text, 'Family\n  bob@a.test\n  Carol (carol@a.test)\n');
      assert.match((await cli.ok('alice', ['chats'])).stdout, /\nCarol +\[/);

      await cli.ok('alice', ['roster', 'remove', 'bob@a.test']);
      assert.deepEqual(
        (await list()).map((g) => [g.group, g.contacts.map((c) => c.name)]),
        [['Family', ['Carol']]],
      );
      const missing = await cli.run('alice', ['roster', 'move', 'dave@a.test', '--group', 'X']);
      assert.equal(missing.code, 1);
      assert.match(missing.stderr, /dave@a\.test is not in your roster/);
    } finally {
      await server.close();
    }
  });
});
