import assert from 'node:assert/strict';
import { appendFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { History, type HistoryEntry } from '../../src/cli/history.js';
import { Profile } from '../../src/cli/profile.js';
import { httpBaseUrl, normalizeServerUrl } from '../../src/cli/urls.js';

describe('server addresses', () => {
  it('accept ws, http and bare host:port', () => {
    assert.equal(normalizeServerUrl('127.0.0.1:8447'), 'ws://127.0.0.1:8447');
    assert.equal(normalizeServerUrl('http://box.lan:8447/'), 'ws://box.lan:8447');
    assert.equal(normalizeServerUrl('https://pmb.example.org'), 'wss://pmb.example.org');
    assert.throws(() => normalizeServerUrl('ftp://x'), /not a server address/);
    assert.equal(httpBaseUrl('ws://0.0.0.0:8447'), 'http://127.0.0.1:8447');
  });
});

describe('local history', () => {
  const entry = (id: string, from = 'a'.repeat(40)): HistoryEntry => ({
    id,
    from,
    to: ['b'.repeat(40)],
    text: `text ${id}`,
    kind: 'msg',
    ts: 1,
    received: 2,
    outgoing: false,
    stored: 3,
  });

  it('keeps a message once per sender and id, across processes and torn lines', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pmb-hist-'));
    try {
      const file = join(dir, 'history.jsonl');
      const h = await History.load(file);
      assert.equal(h.add(entry('m1')), true);
      assert.equal(h.add(entry('m1')), false);
      assert.equal(
        h.add(entry('m1', 'c'.repeat(40))),
        true,
        'same id from another sender is another message',
      );
      await h.flush();
      // Another process appended the same message, then power failed mid-line.
      await appendFile(file, `${JSON.stringify(entry('m1'))}\n{"id":"m2","fro`);
      const again = await History.load(file);
      assert.deepEqual(
        again.entries.map((e) => [e.id, e.from[0]]),
        [
          ['m1', 'a'],
          ['m1', 'c'],
        ],
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('is the SDK seen-store: what a restarted pmb loads counts as shown, and marking waits for the disk', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pmb-hist-'));
    try {
      const file = join(dir, 'history.jsonl');
      const h = await History.load(file);
      const seen = h.seenStore();
      const key = `${'a'.repeat(40)}/m1`;
      assert.equal(await seen.has(key), false);
      h.add(entry('m1')); // what the session's message handler does
      await seen.add(key); // what the SDK does before it acknowledges
      assert.match(await readFile(file, 'utf8'), /"id":"m1"/, 'on disk before the ack');
      // The next pmb process (an app restart) must not show it again if the server pushes it again.
      const restarted = (await History.load(file)).seenStore();
      assert.equal(await restarted.has(key), true);
      assert.equal(await restarted.has(`${'c'.repeat(40)}/m1`), false, 'same id from another sender');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('profile updates re-read the file, so two processes do not undo each other', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pmb-prof-'));
    try {
      const one = await Profile.open(dir);
      const two = await Profile.open(dir);
      await one.update((d) => {
        d.roster.push({ fingerprint: 'a'.repeat(40), group: 'Family' });
      });
      await two.update((d) => {
        d.known['b'.repeat(40)] = 'bob@a.test';
      });
      const saved = JSON.parse(await readFile(join(dir, 'profile.json'), 'utf8'));
      assert.equal(saved.roster.length, 1);
      assert.equal(saved.known['b'.repeat(40)], 'bob@a.test');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
