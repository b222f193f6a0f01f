import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, statfs, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { PmbClient } from '../../src/client/index.js';
import type { Envelope } from '../../src/protocol/frames.js';
import { createServer, type PmbServer, serverConfig } from '../../src/server/index.js';
import { freePort } from '../helpers/network.js';
import { connectUser, inbox } from '../helpers/servers.js';
import { smallDisk } from '../helpers/small-disk.js';
import { until } from '../helpers/wait.js';

/** Every deliver frame a client gets, before the SDK drops redeliveries: what the server really sent. */
function rawDeliveries(client: PmbClient): number[] {
  const seqs: number[] = [];
  const handle = client.conn.events.deliver;
  client.conn.events.deliver = (f) => {
    seqs.push(f.seq);
    handle?.(f);
  };
  return seqs;
}

describe('the receiving server runs out of disk under federated load', () => {
  it("s1's outbox keeps what s2 cannot store; once space is freed everything arrives once, in order", async () => {
    await using disk = await smallDisk(4096);
    const root = await mkdtemp(join(tmpdir(), 'pmb-fed-full-'));
    const [p1, p2] = [await freePort(), await freePort()];
    const fast = { backoff: { initialMs: 100, maxMs: 500 } };
    const make = (domain: string, port: number, dataDir: string, peer: string, peerPort: number) =>
      createServer(
        serverConfig({
          dataDir,
          domain,
          host: '127.0.0.1',
          port,
          registration: 'open',
          logLevel: (process.env.TEST_LOG as 'debug') ?? 'silent',
          resolve: { [peer]: `127.0.0.1:${peerPort}` },
        }),
        { links: fast, outbox: fast },
      );
    const s2Dir = join(disk.path, 'data');
    await mkdir(s2Dir);
    const s1: PmbServer = make('s1.test', p1, join(root, 's1'), 's2.test', p2);
    const s2: PmbServer = make('s2.test', p2, s2Dir, 's1.test', p1);
    await s1.start();
    await s2.start();
    try {
      const alice = await connectUser(s1, 'alice');
      const bob = await connectUser(s2, 'bob');
      const box = inbox(bob);
      const raw = rawDeliveries(bob);
      const key = (await alice.lookup('bob@s2.test')).key;
      await alice.send('bob@s2.test', 'hello');
      await box.waitFor(1);

      // Leave s2 about 96 KiB.
      const { bavail, bsize } = await statfs(disk.path);
      const filler = join(disk.path, 'filler');
      await writeFile(filler, Buffer.alloc(Math.max(0, Number(bavail) * Number(bsize) - 96 * 1024)));

      const N = 150;
      const envelopes: Envelope[] = [];
      for (let i = 0; i < N; i++) envelopes.push(await alice.seal([key], `m${i} ${'x'.repeat(900)}`));
      // s1's disk is fine: every send is acknowledged into its outbox, pipelined.
      await Promise.all(envelopes.map((e) => alice.sendEnvelope(e)));
      // s2 answers storage_full (a batch is stored whole or not at all): the outbox keeps retrying.
      await new Promise((r) => setTimeout(r, 1500));
      const stuck = s1.context.mail.outbox.pending('s2.test');
      assert.ok(stuck > 0, 's2 is full: the rest waits in the outbox');
      assert.ok(box.messages.length < N + 1, `bob has ${box.messages.length - 1} of ${N} while s2 is full`);

      await rm(filler);
      await box.waitFor(N + 1, 30_000);
      await until(() => s1.context.mail.outbox.pending('s2.test') === 0, 10_000, 'the outbox to empty');
      await bob.flushAcks();
      await new Promise((r) => setTimeout(r, 300));
      assert.deepEqual(
        box.messages.map((m) => m.text),
        ['hello', ...envelopes.map((_, i) => `m${i} ${'x'.repeat(900)}`)],
        'everything arrives once, in order',
      );
      assert.equal(new Set(raw).size, raw.length, 'no mailbox position is pushed twice');
      // And after a restart of s2 nothing comes back.
      bob.close();
      const bobAgain = await connectUser(s2, 'bob', { identity: bob.identity, register: false });
      const again = inbox(bobAgain);
      await bobAgain.waitSynced();
      assert.equal(again.messages.length, 0, 'what was acknowledged is not shown again');
      bobAgain.close();
      alice.close();
    } finally {
      await s1.close();
      await s2.close();
      await rm(root, { recursive: true, force: true });
    }
  });
});
