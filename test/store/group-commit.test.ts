import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { openStore } from '../../src/store/index.js';
import { tempDir } from '../helpers/servers.js';

describe('group commit', () => {
  it('writes of one tick share one commit, and a failing write fails alone', async () => {
    await using dir = await tempDir();
    const store = openStore(join(dir.path, 'pmb.db'));
    try {
      store.identities.putIdentity('a'.repeat(40), new Uint8Array([1]), 1);
      const before = store.writes.commits;
      const results = await Promise.allSettled([
        store.writes.submit(() => store.accounts.create('a'.repeat(40), 1)),
        store.writes.submit(() => {
          store.accounts.addInvite('code-1', 1, 10);
          throw new Error('this write fails');
        }),
        store.writes.submit(() => store.accounts.addInvite('code-2', 1, 10)),
      ]);
      assert.deepEqual(
        results.map((r) => r.status),
        ['fulfilled', 'rejected', 'fulfilled'],
      );
      assert.equal(store.writes.commits, before + 1, 'one commit for the batch');
      assert.equal(store.accounts.exists('a'.repeat(40)), true);
      assert.equal(store.accounts.useInvite('code-1', 'x', 2), false, 'the failed write left nothing');
      assert.equal(store.accounts.useInvite('code-2', 'x', 2), true);
    } finally {
      store.close();
    }
  });

  it('a deferred write rides along with the next batch instead of costing a commit of its own', async () => {
    await using dir = await tempDir();
    const store = openStore(join(dir.path, 'pmb.db'));
    try {
      const before = store.writes.commits;
      const deferred = store.writes.defer(() => store.accounts.addInvite('lazy', 1, 10), 10_000);
      await new Promise((r) => setTimeout(r, 20));
      assert.equal(store.writes.commits, before, 'not committed on its own yet');
      await store.writes.submit(() => store.accounts.addInvite('eager', 1, 10));
      await deferred;
      assert.equal(store.writes.commits, before + 1);
      assert.equal(store.accounts.useInvite('lazy', 'x', 2), true);
    } finally {
      store.close();
    }
  });

  it('a deferred write alone is committed within its delay', async () => {
    await using dir = await tempDir();
    const store = openStore(join(dir.path, 'pmb.db'));
    try {
      // The timer does not keep a process alive on its own (a server does); this test keeps it alive.
      const keepAlive = setTimeout(() => {}, 5000);
      await store.writes.defer(() => store.accounts.addInvite('alone', 1, 10), 30);
      clearTimeout(keepAlive);
      assert.equal(store.accounts.useInvite('alone', 'x', 2), true);
    } finally {
      store.close();
    }
  });

  it('closing commits what is still queued', async () => {
    await using dir = await tempDir();
    const path = join(dir.path, 'pmb.db');
    const store = openStore(path);
    const pending = store.writes.defer(() => store.accounts.addInvite('late', 1, 10), 10_000);
    store.close();
    await pending;
    const again = openStore(path);
    try {
      assert.equal(again.accounts.useInvite('late', 'x', 2), true);
    } finally {
      again.close();
    }
  });
});
