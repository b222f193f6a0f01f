import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { startServer } from '../helpers/servers.js';
import { cliSandbox, runPmb } from './pmb.js';

/** A loopback port nobody listens on. */
async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address() as { port: number };
  await new Promise((resolve) => srv.close(resolve));
  return port;
}

describe('registration by invite, and servers that are not there', () => {
  it('register needs an invite; pmb invite makes a code that works once', async () => {
    const server = await startServer({ domain: 'a.test', registration: 'invite' });
    await using cli = await cliSandbox();
    try {
      const refused = await cli.run('alice', ['register', 'alice@a.test', '--server', server.url]);
      assert.equal(refused.code, 1);
      assert.match(
        refused.stderr,
        /^pmb: Registration needs a valid invite code: .*pmb invite.*--invite CODE$/m,
      );

      const wrongDomain = await cli.run('alice', ['register', 'alice@b.test', '--server', server.url]);
      assert.equal(wrongDomain.code, 1);
      assert.match(wrongDomain.stderr, /registers names @a\.test, not @b\.test/);

      // The data dir is enough: the token and the running server's URL are in it.
      const invite = await runPmb(['invite', '--data-dir', server.dir], cli.home);
      assert.equal(invite.code, 0, invite.stderr);
      const code = invite.stdout.trim();
      assert.match(code, /^[0-9a-f]{24}$/);

      await cli.ok('alice', ['register', 'alice@a.test', '--server', server.url, '--invite', code]);
      const again = await cli.run('bob', [
        'register',
        'bob@a.test',
        '--server',
        server.url,
        '--invite',
        code,
      ]);
      assert.equal(again.code, 1);
      assert.match(again.stderr, /invite code is unknown, used or expired/);

      // The server key was pinned at registration: another key at that address is refused.
      const profileFile = join(cli.profile('alice'), 'profile.json');
      const saved = JSON.parse(await readFile(profileFile, 'utf8'));
      assert.equal(saved.serverFingerprint, server.fingerprint);
      await writeFile(profileFile, JSON.stringify({ ...saved, serverFingerprint: 'f'.repeat(40) }));
      const impostor = await cli.run('alice', ['inbox']);
      assert.equal(impostor.code, 1);
      assert.match(impostor.stderr, /not the pinned f{40}\. Someone may be impersonating your server/);
      await cli.ok('alice', ['login', '--server', server.url, '--accept-server-key']);
      assert.equal(JSON.parse(await readFile(profileFile, 'utf8')).serverFingerprint, server.fingerprint);

      const badToken = await runPmb(['invite', '--server', server.url], cli.home, {
        env: { PMB_ADMIN_TOKEN: 'not-the-token' },
      });
      assert.equal(badToken.code, 1);
      assert.match(badToken.stderr, /refused the admin token/);
    } finally {
      await server.close();
    }
  });

  it('an unreachable server is reported plainly, with exit code 1', async () => {
    await using cli = await cliSandbox();
    const url = `ws://127.0.0.1:${await closedPort()}`;
    const r = await cli.run('alice', ['register', 'alice@a.test', '--server', url]);
    assert.equal(r.code, 1);
    assert.equal(
      r.stderr.split('\n').filter(Boolean).at(-1),
      `pmb: Cannot reach a PMB server at ${url} (is it running? is the address right?)`,
    );

    const j = await cli.run('alice', ['login', '--server', url, '--json']);
    assert.equal(j.code, 1);
    assert.equal(JSON.parse(j.stderr).error.code, 'unavailable');

    const inv = await runPmb(['invite', '--server', url.replace('ws:', 'http:')], cli.home, {
      env: { PMB_ADMIN_TOKEN: 'x' },
    });
    assert.equal(inv.code, 1);
    assert.match(
      inv.stderr,
      /^pmb: Cannot reach the PMB server at http:\/\/127\.0\.0\.1:\d+ \(is pmb serve running\?\)$/m,
    );

    const usage = await cli.run('alice', ['register', 'not-an-address', '--server', url]);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /"not-an-address" is not nick@domain/);
  });
});
