import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import { PmbError } from '../../protocol/errors.js';
import { type CliContext, print, printJson } from '../context.js';
import { CliError } from '../errors.js';
import { isNotFound } from '../files.js';
import { parsePositiveNumber } from '../options.js';
import { defaultDataDir } from '../paths.js';
import { httpBaseUrl } from '../urls.js';

interface InviteOptions {
  dataDir?: string;
  server?: string;
  ttlHours?: number;
  json?: boolean;
}

export function register(program: Command, ctx: CliContext): void {
  program
    .command('invite')
    .description("create a one-time invite code through the running server's admin API")
    .option('--data-dir <dir>', "the server's data dir, holding admin-token and server.json")
    .option('--server <url>', 'the server (default: the URL in <data-dir>/server.json)')
    .option(
      '--ttl-hours <n>',
      'hours until the code expires (default 168)',
      parsePositiveNumber('--ttl-hours', 24 * 90),
    )
    .option('--json', 'print {code, expires}')
    .action(async (opts: InviteOptions) => {
      const dataDir = opts.dataDir ?? defaultDataDir(ctx.env);
      const token = ctx.env.PMB_ADMIN_TOKEN || (await readAdminToken(dataDir));
      const base = httpBaseUrl(opts.server ?? (await runningServerUrl(dataDir)));
      // localRequest: a box's own server may have a certificate that does not name 127.0.0.1.
      const { localRequest } = await import('../../appliance/local-http.js');
      let res: Awaited<ReturnType<typeof localRequest>>;
      try {
        res = await localRequest(`${base}/admin/invites`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: JSON.stringify(opts.ttlHours ? { ttlHours: opts.ttlHours } : {}),
          timeoutMs: 15_000,
        });
      } catch {
        throw new PmbError('unavailable', `Cannot reach the PMB server at ${base} (is pmb serve running?)`);
      }
      let body: { code?: string; expires?: number; error?: { code?: string; message?: string } } = {};
      try {
        body = JSON.parse(res.body) as typeof body;
      } catch {
        // Not JSON: reported below by status.
      }
      if (res.status !== 200 || !body.code) {
        if (res.status === 403) {
          throw new CliError(
            'forbidden',
            `The server refused the admin token from ${dataDir} (is it this server's data dir?)`,
          );
        }
        throw new CliError(
          body.error?.code ?? 'internal',
          body.error?.message ?? `The server answered HTTP ${res.status}`,
        );
      }
      if (opts.json) printJson(ctx, { code: body.code, expires: body.expires });
      else print(ctx, body.code);
    });
}

async function readAdminToken(dataDir: string): Promise<string> {
  try {
    return (await readFile(join(dataDir, 'admin-token'), 'utf8')).trim();
  } catch (err) {
    if (isNotFound(err)) {
      throw new CliError('no_admin_token', `No admin token in ${dataDir}: is that the server's --data-dir?`);
    }
    if ((err as NodeJS.ErrnoException).code === 'EACCES') {
      throw new CliError(
        'forbidden',
        `Cannot read ${join(dataDir, 'admin-token')}: run as the server's user`,
      );
    }
    throw err;
  }
}

async function runningServerUrl(dataDir: string): Promise<string> {
  try {
    const info = JSON.parse(await readFile(join(dataDir, 'server.json'), 'utf8')) as { url?: unknown };
    if (typeof info.url === 'string') return info.url;
  } catch (err) {
    if (!isNotFound(err) && !(err instanceof SyntaxError)) throw err;
  }
  throw new CliError(
    'not_running',
    `No running server found in ${dataDir} (no server.json): start pmb serve, or pass --server URL`,
  );
}
