import assert from 'node:assert/strict';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { readPublicIdentity, unlockIdentity } from '../../src/crypto/index.js';
import { startServer } from '../helpers/servers.js';
import { cliSandbox, jsonLines } from './pmb.js';

describe('one account on two devices', () => {
  it('a secret key copied with id export/import makes a second device that gets and sends mail', async () => {
    const server = await startServer({ domain: 'a.test', registration: 'open' });
    await using cli = await cliSandbox();
    const pass = { env: { PMB_PASSPHRASE: 'correct horse' } };
    try {
      await Promise.all([
        cli.ok('alice', ['register', 'alice@a.test', '--server', server.url], pass),
        cli.ok('bob', ['register', 'bob@a.test', '--server', server.url]),
      ]);

      // The key file is private, and protected by the passphrase.
      const keyFile = join(cli.profile('alice'), 'identity.asc');
      assert.equal((await stat(keyFile)).mode & 0o777, 0o600);
      assert.equal((await stat(cli.profile('alice'))).mode & 0o777, 0o700);
      await assert.rejects(unlockIdentity(await readFile(keyFile, 'utf8')), /passphrase/);

      // A public export holds no secret: PMB's own key reader refuses keys with secret material.
      const pub = (await cli.ok('alice', ['id', 'export'])).stdout;
      assert.match(pub, /BEGIN PGP PUBLIC KEY BLOCK/);
      assert.doesNotMatch(pub, /PRIVATE/);
      const aliceFp = (await readPublicIdentity(pub)).fingerprint;

      const exported = join(cli.home, 'alice-secret.asc');
      await cli.ok('alice', ['id', 'export', '--secret', '--out', exported]);
      assert.equal((await stat(exported)).mode & 0o777, 0o600);
      assert.match(await readFile(exported, 'utf8'), /BEGIN PGP PRIVATE KEY BLOCK/);

      // The copy is still passphrase-protected: importing needs the passphrase.
      const noPass = await cli.run('alice2', ['id', 'import', exported]);
      assert.equal(noPass.code, 1);
      assert.match(noPass.stderr, /^pmb: The secret key is protected by a passphrase: set PMB_PASSPHRASE/);
      const passFile = join(cli.home, 'pass.txt');
      await writeFile(passFile, 'correct horse\n');
      await cli.ok('alice2', ['id', 'import', exported, '--passphrase-file', passFile]);
      const login = jsonLines(
        (await cli.ok('alice2', ['login', '--server', server.url, '--json', '--passphrase-file', passFile]))
          .stdout,
      )[0];
      assert.equal(login?.address, 'alice@a.test');
      assert.equal(login?.fingerprint, aliceFp);

      const show1 = JSON.parse((await cli.ok('alice', ['id', 'show', '--json'])).stdout);
      const show2 = JSON.parse((await cli.ok('alice2', ['id', 'show', '--json'])).stdout);
      assert.equal(show2.fingerprint, show1.fingerprint);
      assert.deepEqual(show2.addresses, ['alice@a.test']);
      assert.equal(show2.server, server.url);
      assert.notEqual(show2.device, show1.device);

      // Mail sent after the second device joined reaches both devices.
      await cli.ok('bob', ['send', 'alice@a.test', 'to every alice']);
      await cli.ok('alice2', ['send', 'bob@a.test', 'sent from the second device'], pass);
      const d1 = jsonLines((await cli.ok('alice', ['inbox', '--json'], pass)).stdout);
      const d2 = jsonLines((await cli.ok('alice2', ['inbox', '--json'], pass)).stdout);
      assert.deepEqual(
        d1.map((m) => [m.text, m.outgoing, m.fromAddress]),
        [
          ['to every alice', false, 'bob@a.test'],
          // The first device sees what the account sent from the other one.
          ['sent from the second device', true, 'alice@a.test'],
        ],
      );
      assert.equal(d1[1]?.toAddress, 'bob@a.test');
      assert.deepEqual(
        d2.map((m) => [m.text, m.outgoing]),
        [['to every alice', false]],
      );
      const bobGot = jsonLines((await cli.ok('bob', ['inbox', '--json'])).stdout);
      assert.deepEqual(
        bobGot.map((m) => [m.text, m.from]),
        [['sent from the second device', aliceFp]],
      );

      const wrong = await cli.run('alice', ['inbox'], { env: { PMB_PASSPHRASE: 'wrong' } });
      assert.equal(wrong.code, 1);
      assert.equal(wrong.stderr.trim(), 'pmb: Wrong passphrase for this secret key');
    } finally {
      await server.close();
    }
  });
});
