import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loginWithFailover, type PmbClient } from '../../src/client/index.js';
import type { PmbServer } from '../../src/server/index.js';
import { cliSandbox, jsonLines } from '../cli/pmb.js';
import { linkAll, startNetwork, type TestNetwork } from '../helpers/network.js';
import { connectUser, inbox, NodeWebSocket } from '../helpers/servers.js';
import { until } from '../helpers/wait.js';

const fast = { links: { backoff: { initialMs: 50, maxMs: 400 } } };
const where = (s: PmbServer, fp: string) => s.context.store.identities.location(fp);

describe('backup servers: the SDK fails over and the federation follows', () => {
  let net: TestNetwork;
  let alice: PmbClient;
  before(async () => {
    net = await startNetwork(3, fast);
    await linkAll(net);
  });
  after(async () => {
    alice?.close();
    await net.close();
  });

  it("bob's server s2 is down: he logs in on his backup s3, mail follows; his other device follows him there", async () => {
    const [s1, s2, s3] = net.servers as [PmbServer, PmbServer, PmbServer];
    alice = await connectUser(s1, 'alice');
    const bob = await connectUser(s2, 'bob');
    const fp = bob.identity.fingerprint;
    await until(() => where(s1, fp) === 's2.test' && where(s3, fp) === 's2.test', 10_000, 'replication');
    bob.close();
    const s2url = s2.url;
    await net.stop(1);

    const skipped: string[] = [];
    const first = await loginWithFailover({
      urls: [s2url, s3.url],
      WebSocket: NodeWebSocket,
      identity: bob.identity,
      device: 'phone',
      onSkip: (u) => skipped.push(u),
    });
    assert.equal(first.via, 'backup');
    assert.deepEqual(skipped, [s2url]);
    assert.equal(first.login.location, 's3.test');
    await until(() => where(s1, fp) === 's3.test', 10_000, 's1 to follow bob to s3');
    const box = inbox(first.client);
    await alice.send('bob@s2.test', 'reached you on the backup');
    await box.waitFor(1, 10_000);
    assert.equal(box.messages[0]?.text, 'reached you on the backup');

    // s2 comes back; bob's laptop still thinks s2 is home: it is sent on to s3.
    const back = await net.restart(1);
    await until(() => where(back, fp) === 's3.test', 10_000, 's2 to catch up with the move once relinked');
    const laptop = await loginWithFailover({
      urls: [s2url, s3.url],
      WebSocket: NodeWebSocket,
      identity: bob.identity,
      device: 'laptop',
    });
    assert.equal(laptop.via, 'followed');
    assert.equal(laptop.url, s3.url);
    assert.equal(where(s3, fp), 's3.test');
    laptop.client.close();
    first.client.close();
  });
});

describe('pmb (the CLI) with a backup server', () => {
  let net: TestNetwork;
  let cli: Awaited<ReturnType<typeof cliSandbox>>;
  before(async () => {
    net = await startNetwork(3, fast);
    await linkAll(net);
    cli = await cliSandbox();
  });
  after(async () => {
    await net.close();
    await cli?.[Symbol.asyncDispose]();
  });

  it('pmb servers add, the server dies, pmb inbox logs in on the backup and the profile follows', async () => {
    const [s1, s2, s3] = net.servers as [PmbServer, PmbServer, PmbServer];
    const reg = await cli.ok('bob', ['register', 'bob@s2.test', '--server', s2.url, '--json']);
    const fp = jsonLines(reg.stdout)[0]?.fingerprint as string;
    await cli.ok('alice', ['register', 'alice@s1.test', '--server', s1.url]);
    const list = await cli.ok('bob', ['servers', 'add', s3.url, '--json']);
    assert.deepEqual(jsonLines(list.stdout)[0], { server: s2.url, backupServers: [s3.url] });
    await until(() => where(s1, fp) === 's2.test' && where(s3, fp) === 's2.test', 10_000, 'replication');

    await net.stop(1);
    await cli.ok('alice', ['send', 'bob@s2.test', 'sent while s2 is down']);
    const r = await cli.ok('bob', ['inbox']);
    assert.match(r.stderr, /cannot be reached/);
    assert.match(r.stderr, /now lives on/);
    // The message waited in s1's outbox for s2, then followed bob to s3.
    let shown = r.stdout;
    if (!shown.includes('sent while s2 is down')) {
      await until(() => s1.context.mail.outbox.pending() === 0, 10_000, 's1 outbox to drain');
      shown += (await cli.ok('bob', ['inbox'])).stdout;
    }
    assert.equal(shown.match(/sent while s2 is down/g)?.length, 1, shown);
    const profile = JSON.parse(await readFile(join(cli.profile('bob'), 'profile.json'), 'utf8'));
    assert.equal(profile.server, s3.url);
    assert.deepEqual(profile.backupServers, [s2.url]);
    assert.equal(where(s1, fp), 's3.test');
  });
});
