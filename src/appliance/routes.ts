import type { Hono } from 'hono';
import { SETUP_PAGE } from '../../web-admin/setup-page.js';
import type { Context } from '../server/index.js';
import { integrityCheck } from '../store/integrity.js';
import type { Origin } from './config.js';
import {
  checkAnswers,
  checkSetupToken,
  completeSetup,
  registerCommand,
  SetupError,
  setupDone,
} from './first-run.js';

export interface ApplianceRouteOptions {
  /** Where each setting came from, to warn when setup saves a value that an env var or flag overrides. */
  origins?: Record<string, Origin>;
}

/** The appliance's HTTP routes: first-run setup (GET/POST /setup) and admin checks for `pmb doctor`. */
export function applianceRoutes(opts: ApplianceRouteOptions = {}) {
  return (app: Hono, ctx: Context): void => {
    // One setup at a time: the token is spent by whoever finishes first.
    let busy = false;

    app.get('/setup', (c) => {
      c.header(
        'content-security-policy',
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; form-action 'self'",
      );
      c.header('cache-control', 'no-store');
      return c.html(SETUP_PAGE);
    });

    app.get('/setup/status', (c) =>
      c.json({
        pending: !setupDone(ctx.store),
        domain: ctx.config.domain,
        registration: ctx.config.registration,
      }),
    );

    app.post('/setup', async (c) => {
      if (busy) return c.json({ error: { code: 'busy', message: 'Setup is in progress; try again' } }, 409);
      busy = true;
      try {
        const body = (await c.req.json().catch(() => ({}))) as {
          token?: unknown;
          domain?: unknown;
          registration?: unknown;
          admin?: unknown;
        };
        await checkSetupToken(ctx.config.dataDir, body.token);
        const admin =
          typeof body.admin === 'object' && body.admin ? (body.admin as { nick?: unknown }).nick : body.admin;
        const answers = checkAnswers({ ...body, admin });
        const result = await completeSetup(
          { store: ctx.store, dataDir: ctx.config.dataDir, now: ctx.now, live: ctx.config },
          answers,
        );
        const notes: string[] = [];
        for (const key of ['domain', 'registration'] as const) {
          const o = opts.origins?.[key];
          if (o && (o.source === 'env' || o.source === 'flag')) {
            notes.push(
              `${key} was saved to ${result.configFile}, but ${o.from} overrides it at the next start`,
            );
          }
        }
        const server =
          ctx.config.publicUrl ??
          `${ctx.config.tls || ctx.config.acme ? 'wss' : 'ws'}://${c.req.header('host') ?? ''}`;
        ctx.log.info({ domain: result.domain, registration: result.registration }, 'first-run setup done');
        return c.json({
          domain: result.domain,
          registration: result.registration,
          admin: result.admin,
          invite: result.invite,
          server,
          register: registerCommand(result.admin, result.domain, server, result.invite.code),
          configFile: result.configFile,
          notes,
        });
      } catch (err) {
        if (err instanceof SetupError) {
          return c.json({ error: { code: err.code, message: err.message } }, err.status);
        }
        ctx.log.warn({ err }, 'setup failed');
        return c.json({ error: { code: 'internal', message: 'Setup failed; see the server log' } }, 500);
      } finally {
        busy = false;
      }
    });

    // Behind the admin token (the /admin/* guard of the core app): SQLite's structural check.
    app.get('/admin/integrity', (c) => {
      const problems = integrityCheck(ctx.store.db);
      return c.json({ ok: problems.length === 1 && problems[0] === 'ok', result: problems.slice(0, 20) });
    });
  };
}
