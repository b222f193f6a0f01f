import type { Command } from 'commander';
import type { ConfigFlags, PmbConfig } from '../../appliance/config.js';
import { configOptions, loadConfig } from '../config-options.js';
import { type CliContext, note, print, printJson } from '../context.js';
import { CliError } from '../errors.js';
import { aborted } from '../options.js';
import { VERSION } from '../version.js';

export function register(program: Command, ctx: CliContext): void {
  configOptions(
    program
      .command('serve')
      .description('run a PMB server until Ctrl-C (SIGINT) or SIGTERM')
      .addHelpText(
        'after',
        `
Settings come from defaults <- the config file <- <data-dir>/pmb.toml <- PMB_* variables <- these flags;
\`pmb config show\` prints the result. On a fresh data dir it prints a first-run setup URL and token.`,
      ),
  )
    .option('--json', 'print one JSON line with the URL, domain, fingerprint and data dir')
    .action(async (flags: ConfigFlags & { json?: boolean }) => {
      const resolved = loadConfig(ctx, flags);
      const { config } = resolved;
      // Loaded here, not at the top: client commands need not pay for the server and its database.
      const { startAppliance } = await import('../../appliance/start.js');
      let app: Awaited<ReturnType<typeof startAppliance>>;
      try {
        app = await startAppliance(resolved, { version: VERSION });
      } catch (err) {
        throw startError(err, config);
      }
      const { server, setup } = app;
      try {
        const domain = server.config.domain;
        const registration = server.config.registration;
        if (flags.json) {
          printJson(ctx, {
            url: server.url,
            domain,
            fingerprint: server.fingerprint,
            dataDir: config.dataDir,
            registration,
            ...(setup ? { setup } : {}),
          });
        } else {
          print(ctx, `pmb listening on ${server.url} (domain ${domain}, registration ${registration})`);
          if (setup) print(ctx, firstRunText(setup));
          else print(ctx, adminHint(registration, domain, config.dataDir, config.publicUrl ?? server.url));
        }
        await aborted(ctx.signal);
        note(ctx, 'pmb: stopping');
      } finally {
        await server.close();
      }
    });
}

function startError(err: unknown, config: PmbConfig): unknown {
  const code = (err as NodeJS.ErrnoException).code;
  const where = `${config.host}:${config.port}`;
  if (code === 'EADDRINUSE') {
    return new CliError(
      'address_in_use',
      `${where} is already in use (another pmb serve?); pick another --port`,
    );
  }
  if (code === 'EACCES' || code === 'EADDRNOTAVAIL') {
    return new CliError('cannot_listen', `Cannot listen on ${where} (${code})`);
  }
  if (code === 'domain_locked' || code === 'tls_unreadable')
    return new CliError(code, (err as Error).message);
  if (
    code === 'ERR_OSSL_PEM_NO_START_LINE' ||
    /PEM|certificate|private key/i.test((err as Error).message ?? '')
  ) {
    return new CliError('bad_tls', `TLS: cannot use tls.cert/tls.key: ${(err as Error).message}`);
  }
  return err;
}

function firstRunText(setup: { token: string; urls: string[] }): string {
  return [
    '',
    'First run: finish setting up this server in a browser at',
    ...setup.urls.map((u) => `  ${u}`),
    `with the one-time setup token  ${setup.token}`,
    '(or run `pmb init` on this box). Until then this is shown at every start.',
    'Stop with Ctrl-C.',
  ].join('\n');
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
