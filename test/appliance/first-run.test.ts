import assert from 'node:assert/strict';
import { access, readFile, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { defaultDomain, resolveConfig } from '../../src/appliance/config.js';
import { setupUrls } from '../../src/appliance/first-run.js';
import { lanAddresses } from '../../src/appliance/lan.js';
import { localBase } from '../../src/appliance/running.js';
import { type Appliance, startAppliance } from '../../src/appliance/start.js';
import { connectUser, tempDir } from '../helpers/servers.js';

const NO_SYSTEM_FILE = '/nonexistent/pmb.toml';

function start(dataDir: string, flags: Record<string, string> = {}): Promise<Appliance> {
  const resolved = resolveConfig({
    flags: { dataDir, port: '0', logLevel: process.env.TEST_LOG ?? 'silent', ...flags },
    env: {},
    hostname: 'box',
    systemFile: NO_SYSTEM_FILE,
  });
  return startAppliance(resolved);
}

interface SetupReply {
  domain: string;
  registration: string;
  invite: { code: string };
  register: string;
  error: { code: string; message: string };
}

async function post(app: Appliance, body: unknown): Promise<{ status: number; body: SetupReply }> {
  const res = await fetch(`${localBase(app.server.url)}/setup`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as SetupReply };
}

describe('first-run setup over HTTP', () => {
  it('gives a one-time token that finishes setup once; the domain stays across restarts', async () => {
    await using dir = await tempDir();
    const dataDir = join(dir.path, 'data');
    let app = await start(dataDir);
    try {
      assert.ok(app.setup, 'a fresh data dir starts in setup mode');
      assert.match(app.setup.token, /^[0-9A-Z]{4}(-[0-9A-Z]{4}){3}$/);
      assert.deepEqual(app.setup.urls, [`http://127.0.0.1:${app.server.port}/setup`]);
      assert.equal((await stat(join(dataDir, 'setup-token'))).mode & 0o777, 0o600);
      assert.equal(app.server.config.domain, 'box.local');

      const page = await fetch(app.setup.urls[0]!);
      assert.equal(page.status, 200);
      assert.match(page.headers.get('content-type') ?? '', /text\/html/);
      assert.match(await page.text(), /<form id="setup">/);
      const status = (await (await fetch(`${app.setup.urls[0]}/status`)).json()) as Record<string, unknown>;
      assert.deepEqual(status, { pending: true, domain: 'box.local', registration: 'invite' });

      const answers = { domain: 'Home.Example', registration: 'invite', admin: { nick: 'alice' } };
      const wrong = await post(app, { ...answers, token: 'AAAA-BBBB-CCCC-DDDD' });
      assert.equal(wrong.status, 403);
      assert.equal(wrong.body.error.code, 'bad_token');
      const bad = await post(app, { ...answers, token: app.setup.token, domain: 'not a domain' });
      assert.equal(bad.status, 400);
      assert.match(bad.body.error.message, /"not a domain" is not a domain name/);

      // Lower case and without dashes is the same token: it is typed off a screen.
      const token = app.setup.token.toLowerCase().replace(/-/g, '');
      const done = await post(app, { ...answers, token });
      assert.equal(done.status, 200, JSON.stringify(done.body));
      assert.equal(done.body.domain, 'home.example');
      assert.equal(done.body.registration, 'invite');
      assert.match(done.body.invite.code, /^[0-9a-f]{24}$/);
      assert.equal(
        done.body.register,
        `pmb register alice@home.example --server ws://127.0.0.1:${app.server.port} --invite ${done.body.invite.code}`,
      );
      await assert.rejects(access(join(dataDir, 'setup-token')), 'the token is spent');
      const again = await post(app, { ...answers, token: app.setup.token });
      assert.equal(again.status, 409);
      assert.equal(again.body.error.code, 'setup_done');

      // The running server took the new domain at once; the admin takes the first account with the invite.
      assert.equal(app.server.config.domain, 'home.example');
      const wk = (await (await fetch(`${localBase(app.server.url)}/.well-known/pmb`)).json()) as {
        domain: string;
      };
      assert.equal(wk.domain, 'home.example');
      // Registering alice@home.example with the invite succeeds only on the new domain.
      const alice = await connectUser(app.server, 'alice', { invite: done.body.invite.code });
      alice.close();

      const saved = await readFile(join(dataDir, 'pmb.toml'), 'utf8');
      assert.match(saved, /^domain = "home.example"$/m);
      assert.match(saved, /^registration = "invite"$/m);
    } finally {
      await app.server.close();
    }

    app = await start(dataDir);
    try {
      assert.equal(app.setup, undefined, 'setup is not offered again');
      assert.equal(app.server.config.domain, 'home.example');
      const page = await fetch(`${localBase(app.server.url)}/setup/status`);
      assert.equal(((await page.json()) as { pending: boolean }).pending, false);
    } finally {
      await app.server.close();
    }

    // Accounts exist: another domain would take their names away, so the server refuses to start with it.
    await assert.rejects(start(dataDir, { domain: 'other.example' }), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'domain_locked');
      assert.match(err.message, /registered @home\.example; it cannot become other\.example/);
      return true;
    });
  });

  it('refuses to change the domain once someone registered', async () => {
    await using dir = await tempDir();
    const app = await start(join(dir.path, 'data'), { registration: 'open' });
    try {
      assert.ok(app.setup);
      const early = await connectUser(app.server, 'bob');
      early.close();
      const r = await post(app, {
        token: app.setup.token,
        domain: 'new.example',
        registration: 'invite',
        admin: { nick: 'alice' },
      });
      assert.equal(r.status, 409);
      assert.equal(r.body.error.code, 'domain_locked');
      assert.match(r.body.error.message, /registered @box\.local/);
      assert.equal(app.server.config.domain, 'box.local');
      // Keeping the domain is fine.
      const ok = await post(app, {
        token: app.setup.token,
        domain: 'box.local',
        registration: 'invite',
        admin: { nick: 'alice' },
      });
      assert.equal(ok.status, 200, JSON.stringify(ok.body));
      assert.equal(app.server.config.registration, 'invite');
    } finally {
      await app.server.close();
    }
  });

  it('shows the setup page where other devices of the home reach it', () => {
    const all = setupUrls({ host: '0.0.0.0', port: 8447, tls: false });
    assert.deepEqual(all, [
      `http://${defaultDomain(hostname())}:8447/setup`,
      ...lanAddresses().map((a) => `http://${a}:8447/setup`),
    ]);
    assert.deepEqual(setupUrls({ host: '::1', port: 9, tls: true }), ['https://[::1]:9/setup']);
    assert.deepEqual(
      setupUrls({ host: '127.0.0.1', port: 8447, tls: false, publicUrl: 'wss://pmb.example.org' }),
      ['https://pmb.example.org/setup'],
    );
  });
});
