import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startServer } from '../helpers/servers.js';
import { cliSandbox, jsonLines } from './pmb.js';

describe('pmb send / inbox / chat between two CLI users', () => {
  let server: Awaited<ReturnType<typeof startServer>>;
  let cli: Awaited<ReturnType<typeof cliSandbox>>;
  let alice = '';
  let bob = '';

  before(async () => {
    server = await startServer({ domain: 'a.test', registration: 'open' });
    cli = await cliSandbox();
    const [a, b] = await Promise.all([
      cli.ok('alice', ['register', 'alice@a.test', '--server', server.url, '--json']),
      cli.ok('bob', ['register', 'bob@a.test', '--server', server.url, '--json']),
    ]);
    alice = jsonLines(a.stdout)[0]?.fingerprint as string;
    bob = jsonLines(b.stdout)[0]?.fingerprint as string;
    assert.match(alice, /^[0-9a-f]{40}$/);
    assert.notEqual(alice, bob);
  });

  after(async () => {
    await server?.close();
    await cli?.[Symbol.asyncDispose]();
  });

  it('alice sends three messages; bob sees each once, and a second inbox shows nothing new', async () => {
    const texts = ['hello bob', 'how are you?', 'émoji ok 🙂'];
    const ids: string[] = [];
    for (const text of texts) {
      const r = await cli.ok('alice', ['send', 'bob@a.test', text, '--json']);
      const [res] = jsonLines(r.stdout);
      assert.equal(res?.duplicate, false);
      assert.equal(typeof res?.ts, 'number');
      ids.push(res?.id as string);
    }
    assert.equal(new Set(ids).size, 3);

    const first = await cli.ok('bob', ['inbox', '--json']);
    const got = jsonLines(first.stdout);
    assert.deepEqual(
      got.map((m) => m.text),
      texts,
    );
    for (const [i, m] of got.entries()) {
      assert.equal(m.id, ids[i]);
      assert.equal(m.from, alice);
      assert.equal(m.fromAddress, 'alice@a.test');
      assert.deepEqual(m.to, [bob]);
      assert.equal(m.outgoing, false);
      assert.equal(typeof m.received, 'number');
    }

    const second = await cli.ok('bob', ['inbox', '--json']);
    assert.equal(second.stdout, '');
    const human = await cli.ok('bob', ['inbox']);
    assert.equal(human.stdout.trim(), 'No new messages.');

    // Alice's own copies came back to her device: already in her history, so nothing new.
    const aliceInbox = await cli.ok('alice', ['inbox', '--json']);
    assert.equal(aliceInbox.stdout, '');
  });

  it('chat with piped stdin sends each line and stops at /quit', async () => {
    const r = await cli.ok('alice', ['chat', 'bob@a.test'], {
      input: 'first line\n\nsecond line\n/quit\nnever sent\n',
    });
    // Earlier history with bob is shown first.
    assert.match(r.stdout, /me -> bob@a\.test: hello bob/);
    const got = jsonLines((await cli.ok('bob', ['inbox', '--json'])).stdout);
    assert.deepEqual(
      got.map((m) => m.text),
      ['first line', 'second line'],
    );
    // Bob answers in a chat too, piped; alice reads it in her human inbox.
    await cli.ok('bob', ['chat', alice], { input: 'got it' });
    const aliceInbox = await cli.ok('alice', ['inbox']);
    assert.match(aliceInbox.stdout, /^\[\d\d:\d\d\] bob@a\.test: got it$/m);
  });

  it('lookup shows the key fingerprint and verified addresses the server holds', async () => {
    const r = await cli.ok('alice', ['lookup', 'bob@a.test', '--json']);
    assert.deepEqual(JSON.parse(r.stdout), { fingerprint: bob, addresses: ['bob@a.test'], server: 'a.test' });
  });

  it('sending to an unknown nickname fails with a clear message and exit code 1', async () => {
    const r = await cli.run('alice', ['send', 'nobody@a.test', 'hi']);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr.trim(), 'pmb: Nobody is known as nobody@a.test');
    const j = await cli.run('alice', ['send', 'nobody@a.test', 'hi', '--json']);
    assert.equal(j.code, 1);
    assert.deepEqual(JSON.parse(j.stderr), {
      error: { code: 'not_found', message: 'Nobody is known as nobody@a.test' },
    });
  });
});
