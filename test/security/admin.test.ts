import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { applianceRoutes } from '../../src/appliance/routes.js';
import { createHttpApp } from '../../src/server/http.js';
import { createServer, type PmbServer, serverConfig } from '../../src/server/index.js';

/**
 * The admin API (invites, backups, stats, integrity) answers only to the bearer token in the data dir. The
 * routes are read from the app itself, so a route added later is checked too. The server compares tokens
 * in constant time (equalBytes: XOR over the whole length); loopback timing cannot show that reliably, so
 * this test only shows that a near miss at either end is refused like any other wrong token.
 */
describe('admin API without the token', () => {
  let server: PmbServer;
  let dir: string;
  let base: string;
  let routes: { method: string; path: string }[];
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pmb-admin-'));
    // As `pmb serve` runs it: the core routes and the appliance's.
    server = createServer(
      serverConfig({ dataDir: dir, domain: 'a.test', registration: 'invite', logLevel: 'silent' }),
      { routes: applianceRoutes() },
    );
    await server.start();
    base = server.url.replace('ws://', 'http://');
    const app = createHttpApp({
      ctx: server.context,
      gateway: { connections: 0 } as never,
      adminToken: server.adminToken,
      publicUrl: () => server.url,
    });
    applianceRoutes()(app, server.context);
    routes = app.routes
      .filter((r) => r.path.startsWith('/admin') && r.method !== 'ALL')
      .map((r) => ({ method: r.method, path: r.path }));
  });
  after(async () => {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('unauthenticated admin API: every /admin route refuses (403) without the token, with a wrong, truncated, extended or near-miss token, another scheme or the token in the query, and answers the right token', async () => {
    assert.deepEqual(
      routes.map((r) => `${r.method} ${r.path}`).sort(),
      ['GET /admin/integrity', 'GET /admin/stats', 'POST /admin/backup', 'POST /admin/invites'],
      'the routes this test knows of (add a new one here once it is checked below)',
    );
    const token = server.adminToken;
    const flip = (c: string) => (c === '0' ? '1' : '0');
    const wrong: (string | undefined)[] = [
      undefined,
      '',
      'Bearer ',
      'Bearer nope',
      `Bearer ${token.slice(0, -1)}`,
      `Bearer ${token}0`,
      `Bearer ${flip(token[0] as string)}${token.slice(1)}`,
      `Bearer ${token.slice(0, -1)}${flip(token.at(-1) as string)}`,
      `Basic ${Buffer.from(`admin:${token}`).toString('base64')}`,
      `Token ${token}`,
      token.toUpperCase() === token ? 'Bearer x' : `Bearer ${token.toUpperCase()}`,
    ];
    for (const { method, path } of routes) {
      for (const authorization of wrong) {
        const res = await fetch(`${base}${path}`, {
          method,
          headers: authorization === undefined ? {} : { authorization },
        });
        assert.equal(res.status, 403, `${method} ${path} with ${JSON.stringify(authorization)}`);
        assert.deepEqual(await res.json(), {
          error: { code: 'forbidden', message: 'A valid admin token is required' },
        });
      }
      const query = await fetch(`${base}${path}?token=${token}&access_token=${token}`, { method });
      assert.equal(query.status, 403, `${method} ${path} with the token in the query`);
      const ok = await fetch(`${base}${path}`, { method, headers: { authorization: `Bearer ${token}` } });
      assert.equal(ok.status, 200, `${method} ${path} with the token`);
      await ok.arrayBuffer();
    }
    // Spellings of an admin path that might slip past the guard reach nothing.
    for (const path of [
      '/admin/stats/',
      '/ADMIN/stats',
      '//admin/stats',
      '/%61dmin/stats',
      '/admin%2fstats',
    ]) {
      const res = await fetch(`${base}${path}`);
      assert.ok([403, 404].includes(res.status), `${path}: ${res.status}`);
      assert.equal(((await res.json()) as { accounts?: number }).accounts, undefined, path);
    }
  });
});
