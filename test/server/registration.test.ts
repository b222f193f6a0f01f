import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createInvite } from '../../src/server/index.js';
import { connectUser, startServer, tempDir } from '../helpers/servers.js';

describe('registration policy', () => {
  it('closed: nobody can register', async () => {
    const server = await startServer({ registration: 'closed' });
    try {
      await assert.rejects(connectUser(server, 'alice'), { code: 'registration_closed' });
    } finally {
      await server.close();
    }
  });

  it('invite (the default): registration needs a code, and each code works once', async () => {
    const server = await startServer({ registration: 'invite' });
    try {
      await assert.rejects(connectUser(server, 'alice'), { code: 'invite_required' });
      await assert.rejects(connectUser(server, 'alice', { invite: 'not-a-real-code' }), {
        code: 'invite_required',
      });
      const { code } = await createInvite(server.context, 60_000);
      const alice = await connectUser(server, 'alice', { invite: code });
      await assert.rejects(connectUser(server, 'bob', { invite: code }), { code: 'invite_required' });
      alice.close();
    } finally {
      await server.close();
    }
  });

  it('the admin API makes invites only with the admin token', async () => {
    const server = await startServer({ registration: 'invite' });
    try {
      const http = server.url.replace('ws://', 'http://');
      const denied = await fetch(`${http}/admin/invites`, { method: 'POST' });
      assert.equal(denied.status, 403);
      const wrong = await fetch(`${http}/admin/invites`, {
        method: 'POST',
        headers: { authorization: 'Bearer nope' },
      });
      assert.equal(wrong.status, 403);
      const res = await fetch(`${http}/admin/invites`, {
        method: 'POST',
        headers: { authorization: `Bearer ${server.adminToken}` },
      });
      assert.equal(res.status, 200);
      const { code } = (await res.json()) as { code: string };
      (await connectUser(server, 'carol', { invite: code })).close();
    } finally {
      await server.close();
    }
  });

  it('the server keeps its identity and accounts across restarts and publishes its key at /.well-known/pmb', async () => {
    await using dir = await tempDir();
    const server = await startServer({ dataDir: dir.path });
    const first = server.fingerprint;
    const wk = (await (await fetch(`${server.url.replace('ws://', 'http://')}/.well-known/pmb`)).json()) as {
      fingerprint: string;
      domain: string;
    };
    assert.equal(wk.fingerprint, first);
    assert.equal(wk.domain, 'a.test');
    const alice = await connectUser(server, 'alice');
    alice.close();
    await server.close();

    const again = await startServer({ dataDir: dir.path });
    try {
      assert.equal(again.fingerprint, first);
      const back = await connectUser(again, 'alice', { identity: alice.identity, register: false });
      back.close();
    } finally {
      await again.close();
    }
  });
});
