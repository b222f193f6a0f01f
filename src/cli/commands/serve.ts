import type { Command } from 'commander';
import { type CliContext, note, print, printJson } from '../context.js';
import { CliError } from '../errors.js';
import { aborted } from '../options.js';
import type { ServeFlags } from '../serve-config.js';

export function register(program: Command, ctx: CliContext): void {
  program
    .command('serve')
    .description('run a PMB server until Ctrl-C (SIGINT) or SIGTERM')
    .option('--data-dir <dir>', 'database and admin token (default: $PMB_DATA_DIR or ~/.local/share/pmb)')
    .option(
      '--domain <domain>',
      'domain this server registers nicknames for (default: $PMB_DOMAIN or <hostname>.local)',
    )
    .option(
      '--host <host>',
      'address to listen on (default: $PMB_HOST or 127.0.0.1; 0.0.0.0 for every interface)',
    )
    .option('--port <port>', 'port (default: $PMB_PORT or 8447; 0 picks a free one)')
    .option('--registration <policy>', 'open, invite or closed (default: $PMB_REGISTRATION or invite)')
    .option(
      '--log-level <level>',
      'fatal, error, warn, info, debug or silent (default: $PMB_LOG_LEVEL or info)',
    )
    .option('--json', 'print one JSON line with the URL, domain, fingerprint and data dir')
    .action(async (flags: ServeFlags & { json?: boolean }) => {
      const { resolveServeSettings } = await import('../serve-config.js');
      const settings = resolveServeSettings(flags, ctx.env);
      // Loaded here, not at the top: client commands need not pay for the server and its database.
      const { createServer, serverConfig } = await import('../../server/index.js');
      const server = createServer(serverConfig(settings));
      try {
        await server.start();
      } catch (err) {
        await server.close().catch(() => {});
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EADDRINUSE') {
          throw new CliError(
            'address_in_use',
            `${settings.host}:${settings.port} is already in use (another pmb serve?); pick another --port`,
          );
        }
        if (code === 'EACCES' || code === 'EADDRNOTAVAIL') {
          throw new CliError('cannot_listen', `Cannot listen on ${settings.host}:${settings.port} (${code})`);
        }
        throw err;
      }
      try {
        if (flags.json) {
          printJson(ctx, {
            url: server.url,
            domain: settings.domain,
            fingerprint: server.fingerprint,
            dataDir: settings.dataDir,
            registration: settings.registration,
          });
        } else {
          print(
            ctx,
            `pmb listening on ${server.url} (domain ${settings.domain}, registration ${settings.registration})`,
          );
          print(ctx, adminHint(settings.registration, settings.domain, settings.dataDir, server.url));
        }
        await aborted(ctx.signal);
        note(ctx, 'pmb: stopping');
      } finally {
        await server.close();
      }
    });
}

function adminHint(registration: string, domain: string, dataDir: string, url: string): string {
  const dir = JSON.stringify(dataDir).slice(1, -1);
  const join = `pmb register NICK@${domain} --server ${url}`;
  switch (registration) {
    case 'open':
      return `Anyone who reaches it may register: ${join}\nStop with Ctrl-C.`;
    case 'invite':
      return `Make an invite code: pmb invite --data-dir ${dir}\nThen: ${join} --invite CODE\nStop with Ctrl-C.`;
    default:
      return `Registration is closed (--registration open|invite to change). Stop with Ctrl-C.`;
  }
}
