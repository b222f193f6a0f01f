import assert from 'node:assert/strict';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { PmbClient } from '../../src/client/index.js';
import { decodeRecord, readPublicIdentity, recoveryBody, unlockIdentity } from '../../src/crypto/index.js';
import type { PmbServer } from '../../src/server/index.js';
import { storedToSigned } from '../../src/store/index.js';
import { startNetwork } from '../helpers/network.js';
import { NodeWebSocket } from '../helpers/servers.js';
import { until } from '../helpers/wait.js';
import { cliSandbox, jsonLines } from './pmb.js';

describe('pmb id recovery-key and pmb id recover', () => {
  it('the recovery key is written 0600 and published; with it the owner takes the account back from a thief', async () => {
    await using net = await startNetwork(2, { links: { backoff: { initialMs: 50, maxMs: 400 } } });
    const [s1, s2] = net.servers as [PmbServer, PmbServer];
    await s1.context.links.connect('s2.test');
    await using cli = await cliSandbox();
    await cli.ok('alice', ['register', 'alice@s1.test', '--server', s1.url]);
    const fp = (await readPublicIdentity((await cli.ok('alice', ['id', 'export'])).stdout)).fingerprint;

    const file = join(cli.home, 'paper.asc');
    const made = jsonLines(
      (await cli.ok('alice', ['id', 'recovery-key', '--out', file, '--window-days', '14', '--json'])).stdout,
    )[0];
    assert.equal(made?.account, fp);
    assert.equal(made?.file, file);
    assert.equal(made?.windowDays, 14);
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    const recovery = await unlockIdentity(await readFile(file, 'utf8'));
    assert.equal(recovery.fingerprint, made?.fingerprint);

    // The server holds the recovery record naming that key, and passed it on.
    for (const s of [s1, s2]) {
      await until(() => s.context.store.identities.head(fp)?.seq === 2, 10_000, 'the recovery record');
      const held = s.context.store.identities.records(fp)[1];
      assert.equal(held?.kind, 'recovery');
      const body = recoveryBody.parse(decodeRecord(storedToSigned(held as NonNullable<typeof held>)).body);
      assert.equal((await readPublicIdentity(body.key)).fingerprint, recovery.fingerprint);
      assert.equal(body.windowDays, 14);
    }

    // An existing file is never overwritten.
    const before = await readFile(file, 'utf8');
    const again = await cli.run('alice', ['id', 'recovery-key', '--out', file]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /already exists/);
    assert.equal(await readFile(file, 'utf8'), before);
    assert.equal(s1.context.store.identities.head(fp)?.seq, 2);

    // A thief with a copy of the daily key makes s2 the account's home.
    const daily = await unlockIdentity(await readFile(join(cli.profile('alice'), 'identity.asc'), 'utf8'));
    const thief = await PmbClient.connect({
      url: s2.url,
      WebSocket: NodeWebSocket,
      identity: daily,
      device: 'x',
    });
    await thief.login({ move: true });
    thief.close();
    for (const s of [s1, s2]) {
      await until(() => s.context.store.identities.location(fp) === 's2.test', 10_000, 'the thief’s move');
    }

    const back = jsonLines(
      (await cli.ok('alice', ['id', 'recover', '--recovery-key', file, '--json'])).stdout,
    )[0];
    assert.equal(back?.seq, 3);
    assert.equal(back?.location, 's1.test');
    assert.deepEqual(
      ((back?.overridden ?? []) as { seq: number; kind: string; domain?: string }[]).map((o) => [
        o.seq,
        o.kind,
        o.domain,
      ]),
      [[3, 'location', 's2.test']],
    );
    for (const s of [s1, s2]) {
      await until(() => s.context.store.identities.location(fp) === 's1.test', 10_000, 'the override');
    }

    // Nothing is left to override: the command says so instead of publishing.
    const nothing = await cli.run('alice', ['id', 'recover', '--recovery-key', file]);
    assert.equal(nothing.code, 1);
    assert.match(nothing.stderr, /No record after your recovery record made with the daily key/);
  });
});
