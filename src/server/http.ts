import { Hono } from 'hono';
import { armorPublicKey } from '../crypto/index.js';
import { equalBytes, utf8 } from '../protocol/bytes.js';
import { type DiscoveryDocument, WELL_KNOWN_PATH } from '../protocol/discovery.js';
import { fromError } from '../protocol/errors.js';
import { PROTOCOL_VERSIONS, SUBPROTOCOLS } from '../protocol/version.js';
import { takeSnapshot } from './backup.js';
import type { Context } from './context.js';
import type { Gateway } from './gateway.js';
import { createInvite } from './invites.js';

export interface HttpDeps {
  ctx: Context;
  gateway: Gateway;
  adminToken: string;
  /** Base URL clients use, e.g. ws://127.0.0.1:8447 */
  publicUrl: () => string;
}

/** Plain HTTP: discovery, health, and the admin API (bearer token from the data dir). */
export function createHttpApp({ ctx, gateway, adminToken, publicUrl }: HttpDeps): Hono {
  const app = new Hono();

  app.get(WELL_KNOWN_PATH, (c) => c.json(discoveryDocumentOf(ctx, publicUrl())));

  app.get('/health', (c) =>
    c.json({
      ok: true,
      version: ctx.config.version ?? null,
      connections: gateway.connections,
      devicesOnline: ctx.delivery.onlineDevices(),
    }),
  );

  app.use('/admin/*', async (c, next) => {
    const given = c.req.header('authorization')?.replace(/^Bearer\s+/i, '') ?? '';
    if (!equalBytes(utf8(given), utf8(adminToken))) {
      return c.json({ error: { code: 'forbidden', message: 'A valid admin token is required' } }, 403);
    }
    await next();
  });

  app.post('/admin/invites', async (c) => {
    const body = (await c.req.json().catch(() => ({}))) as { ttlHours?: unknown };
    const ttlHours =
      typeof body.ttlHours === 'number' && body.ttlHours > 0 ? Math.min(body.ttlHours, 24 * 90) : 24 * 7;
    const invite = await createInvite(ctx, ttlHours * 3600 * 1000);
    return c.json(invite);
  });

  // A consistent database snapshot in <dataDir>/backups, for `pmb backup create` while serving.
  app.post('/admin/backup', async (c) => {
    try {
      return c.json(await takeSnapshot(ctx));
    } catch (err) {
      const e = fromError(err);
      ctx.log.warn({ err }, 'backup snapshot failed');
      return c.json({ error: { code: e.code, message: e.message } }, e.status as 400);
    }
  });

  app.get('/admin/stats', (c) =>
    c.json({
      accounts: ctx.store.accounts.count(),
      connections: gateway.connections,
      devicesOnline: ctx.delivery.onlineDevices(),
      commits: ctx.store.writes.commits,
    }),
  );

  app.notFound((c) => c.json({ error: { code: 'not_found', message: 'Not found' } }, 404));
  return app;
}

/** This server's `/.well-known/pmb` document (docs/protocol.md 2.1; schema: discoveryDocument). */
export function discoveryDocumentOf(ctx: Context, websocket: string): DiscoveryDocument {
  return {
    versions: [...PROTOCOL_VERSIONS],
    domain: ctx.config.domain,
    fingerprint: ctx.identity.fingerprint,
    publicKey: armorPublicKey(ctx.identity),
    websocket,
    subprotocols: Object.values(SUBPROTOCOLS),
    registration: ctx.config.registration,
  };
}
