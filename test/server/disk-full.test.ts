import assert from 'node:assert/strict';
import { mkdir, rm, statfs, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { connectUser, inbox, startServer } from '../helpers/servers.js';
import { smallDisk } from '../helpers/small-disk.js';

describe('full disk', () => {
  it('a full disk refuses new messages with storage_full, loses nothing acknowledged, and recovers', async () => {
    await using disk = await smallDisk(4096);
    const dataDir = join(disk.path, 'data');
    await mkdir(dataDir);
    const server = await startServer({ dataDir });
    try {
      const alice = await connectUser(server, 'alice');
      const bob = await connectUser(server, 'bob');
      bob.close();
      const key = (await alice.lookup('bob@a.test')).key;
      // Leave about 96 KiB free.
      const { bavail, bsize } = await statfs(disk.path);
      const filler = join(disk.path, 'filler');
      await writeFile(filler, Buffer.alloc(Math.max(0, Number(bavail) * Number(bsize) - 96 * 1024)));

      const acked: string[] = [];
      let refused: unknown;
      for (let i = 0; i < 2000 && !refused; i++) {
        const env = await alice.seal([key], `m${i} ${'x'.repeat(2000)}`);
        try {
          await alice.sendEnvelope(env);
          acked.push(env.id);
        } catch (err) {
          refused = err;
        }
      }
      assert.ok(refused, 'the disk never filled up');
      assert.equal((refused as { code?: string }).code, 'storage_full');
      assert.ok(acked.length > 0);

      // Space comes back: the server carries on without a restart.
      await rm(filler);
      const after = await alice.send('bob@a.test', 'after the disk was freed');
      assert.equal(after.duplicate, false);

      const bobAgain = await connectUser(server, 'bob', { identity: bob.identity, register: false });
      const box = inbox(bobAgain);
      await bobAgain.waitSynced();
      const ids = box.messages.map((m) => m.id);
      assert.equal(new Set(ids).size, ids.length, 'nothing is shown twice');
      for (const id of acked) assert.ok(ids.includes(id), `acknowledged message ${id} was lost`);
      assert.equal(box.messages.at(-1)?.text, 'after the disk was freed');
      alice.close();
      bobAgain.close();
    } finally {
      await server.close();
    }
  });
});
