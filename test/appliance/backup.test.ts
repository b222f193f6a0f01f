import assert from 'node:assert/strict';
import { mkdir, open, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import * as tar from 'tar';
import type { Envelope } from '../../src/protocol/frames.js';
import { cliSandbox, runPmb } from '../cli/pmb.js';
import { connectUser, inbox, startServer, tempDir } from '../helpers/servers.js';

describe('pmb backup', () => {
  it('a backup taken while serving and receiving restores onto a fresh box: same server, accounts, mail', async () => {
    await using home = await cliSandbox();
    await using dirs = await tempDir('pmb-backup-');
    const oldDir = join(dirs.path, 'old');
    const newDir = join(dirs.path, 'new');
    const archive = join(dirs.path, 'box.tar.gz');
    const server = await startServer({ dataDir: oldDir, domain: 'a.test' });
    const alice = await connectUser(server, 'alice');
    const bob = await connectUser(server, 'bob');
    bob.close(); // bob is offline: his mail waits in the mailbox
    const bobKey = (await alice.lookup('bob@a.test')).key;
    const ackedBefore: string[] = [];
    for (let i = 0; i < 20; i++) {
      const e = await alice.seal([bobKey], `before ${i}`);
      await alice.sendEnvelope(e);
      ackedBefore.push(e.id);
    }
    // Keep sending while the backup runs: the server is busy, not paused for it.
    let sending = true;
    const during: Promise<void> = (async () => {
      for (let i = 0; sending; i++) {
        const e: Envelope = await alice.seal([bobKey], `during ${i}`);
        await alice.sendEnvelope(e);
      }
    })();
    let backupRun: Awaited<ReturnType<typeof runPmb>>;
    try {
      backupRun = await runPmb(
        ['backup', 'create', '--data-dir', oldDir, '--out', archive, '--json'],
        home.home,
      );
    } finally {
      sending = false;
      await during;
      alice.close();
      await server.close();
    }
    assert.equal(backupRun.code, 0, backupRun.stderr);
    const made = JSON.parse(backupRun.stdout) as { path: string; fingerprint: string; via: string };
    assert.equal(made.path, archive);
    assert.equal(made.fingerprint, server.fingerprint);
    assert.equal(made.via, 'server', 'the running server took the snapshot');
    assert.equal((await stat(archive)).mode & 0o777, 0o600, 'the backup holds the secret key: 0600');
    // The server's snapshot file is not left behind in its data dir.
    assert.deepEqual(
      (await readdir(join(oldDir, 'backups'))).filter((f) => f.endsWith('.db')),
      [],
    );

    // A standard tar reads it: a manifest with a format version, the fingerprint, hashes.
    const names: string[] = [];
    await tar.list({ file: archive, onReadEntry: (e) => void names.push(e.path) });
    assert.deepEqual(names.sort(), [
      'pmb-backup/admin-token',
      'pmb-backup/manifest.json',
      'pmb-backup/pmb.db',
    ]);

    const restored = await runPmb(['backup', 'restore', archive, '--data-dir', newDir], home.home);
    assert.equal(restored.code, 0, restored.stderr);
    assert.match(restored.stdout, new RegExp(`Restored server ${server.fingerprint}`));
    assert.equal(
      (await readFile(join(newDir, 'admin-token'), 'utf8')).trim(),
      server.adminToken,
      'the admin token came along',
    );

    const again = await startServer({ dataDir: newDir, domain: 'a.test' });
    try {
      assert.equal(again.fingerprint, server.fingerprint, 'same server identity');
      const bobAgain = await connectUser(again, 'bob', { identity: bob.identity, register: false });
      const box = inbox(bobAgain);
      await bobAgain.waitSynced();
      const ids = new Set(box.messages.map((m) => m.id));
      for (const id of ackedBefore)
        assert.ok(ids.has(id), `message ${id}, acknowledged before the backup, is lost`);
      assert.equal(box.messages[0]?.text, 'before 0');
      bobAgain.close();
      const aliceAgain = await connectUser(again, 'alice', { identity: alice.identity, register: false });
      aliceAgain.close();
    } finally {
      await again.close();
    }
  });

  it('refuses a damaged or altered archive, a non-empty data dir and a running server', async () => {
    await using home = await cliSandbox();
    await using dirs = await tempDir('pmb-backup-');
    const dataDir = join(dirs.path, 'data');
    const server = await startServer({ dataDir, domain: 'a.test' });
    const alice = await connectUser(server, 'alice');
    alice.close();
    const archive = join(dirs.path, 'good.tar.gz');
    try {
      const made = await runPmb(['backup', 'create', '--data-dir', dataDir, '--out', archive], home.home);
      assert.equal(made.code, 0, made.stderr);
      assert.match(made.stderr, /secret key/);

      const onRunning = await runPmb(
        ['backup', 'restore', archive, '--data-dir', dataDir, '--force'],
        home.home,
      );
      assert.equal(onRunning.code, 1);
      assert.match(onRunning.stderr, /A PMB server is running on .*stop it before restoring/);
    } finally {
      await server.close();
    }

    // Stopped: a backup from the database file itself.
    const offline = await runPmb(['backup', 'create', '--data-dir', dataDir, '--json'], home.home);
    assert.equal(offline.code, 0, offline.stderr);
    const off = JSON.parse(offline.stdout) as { path: string; via: string; fingerprint: string };
    assert.equal(off.via, 'file');
    assert.equal(off.fingerprint, server.fingerprint);
    assert.match(off.path, /\/backups\/pmb-backup-\d{8}-\d{6}\.tar\.gz$/);

    const notEmpty = await runPmb(['backup', 'restore', archive, '--data-dir', dataDir], home.home);
    assert.equal(notEmpty.code, 1);
    assert.match(notEmpty.stderr, /is not empty .*--force/);

    // Damaged: a few bytes in the middle changed.
    const damaged = join(dirs.path, 'damaged.tar.gz');
    const bytes = await readFile(archive);
    for (let i = 0; i < 8; i++) bytes[Math.floor(bytes.length / 2) + i]! ^= 0xff;
    await writeFile(damaged, bytes);
    const fresh1 = join(dirs.path, 'fresh1');
    const r1 = await runPmb(['backup', 'restore', damaged, '--data-dir', fresh1], home.home);
    assert.equal(r1.code, 1);
    assert.match(r1.stderr, /is not a usable PMB backup \(damaged or not a backup\)/);
    assert.deepEqual(await readdir(fresh1).catch(() => []), [], 'nothing restored');

    // Altered: a well-formed archive whose database is not the one its manifest hashed.
    const unpacked = join(dirs.path, 'unpacked');
    await mkdir(unpacked);
    await tar.extract({ file: archive, cwd: unpacked });
    const db = await open(join(unpacked, 'pmb-backup', 'pmb.db'), 'r+');
    await db.write(Buffer.from('tampered'), 0, 8, 4096);
    await db.close();
    const altered = join(dirs.path, 'altered.tar.gz');
    await tar.create({ gzip: true, file: altered, cwd: unpacked }, ['pmb-backup']);
    const fresh2 = join(dirs.path, 'fresh2');
    const r2 = await runPmb(['backup', 'restore', altered, '--data-dir', fresh2, '--json'], home.home);
    assert.equal(r2.code, 1);
    const err = JSON.parse(r2.stderr) as { error: { code: string; message: string } };
    assert.equal(err.error.code, 'bad_backup');
    assert.match(err.error.message, /pmb\.db does not match its SHA-256/);
    assert.deepEqual(await readdir(fresh2).catch(() => []), []);

    // Not a backup at all.
    const r3 = await runPmb(
      ['backup', 'restore', join(dataDir, 'admin-token'), '--data-dir', fresh2],
      home.home,
    );
    assert.equal(r3.code, 1);
    assert.match(r3.stderr, /not a usable PMB backup/);

    // --force moves what was there aside, then restores.
    await writeFile(join(dataDir, 'note.txt'), 'kept');
    const forced = await runPmb(
      ['backup', 'restore', archive, '--data-dir', dataDir, '--force', '--json'],
      home.home,
    );
    assert.equal(forced.code, 0, forced.stderr);
    const f = JSON.parse(forced.stdout) as { replacedDir: string; fingerprint: string };
    assert.equal(f.fingerprint, server.fingerprint);
    assert.ok((await readdir(f.replacedDir)).includes('pmb.db'));
    const back = await startServer({ dataDir, domain: 'a.test' });
    assert.equal(back.fingerprint, server.fingerprint);
    await back.close();
  });
});
