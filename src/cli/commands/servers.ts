import type { Command } from 'commander';
import { type CliContext, print, printJson } from '../context.js';
import { usageError } from '../errors.js';
import { type ClientOptions, clientOptions, openProfile } from '../options.js';
import { normalizeServerUrl } from '../urls.js';

/**
 * The profile's servers: the account's server and its backups, tried in order when it cannot be reached
 * (logging in on a backup moves the account there; docs/federation.md, "Backup servers and failover").
 */
export function register(program: Command, ctx: CliContext): void {
  const servers = program
    .command('servers')
    .description("the account's server and its backup servers (tried in order when it is unreachable)");

  const show = async (opts: ClientOptions) => {
    const profile = await openProfile(ctx, opts);
    const d = profile.data;
    if (opts.json) {
      printJson(ctx, { server: d.server ?? null, backupServers: d.backupServers });
      return;
    }
    print(ctx, `server   ${d.server ?? '(none yet: pmb register or pmb login --server URL)'}`);
    if (d.backupServers.length === 0) print(ctx, 'backups  (none: pmb servers add URL)');
    for (const [i, u] of d.backupServers.entries()) print(ctx, `backup ${i + 1} ${u}`);
  };

  clientOptions(servers.command('list', { isDefault: true }))
    .description('show the server and the backups, in the order they are tried')
    .action(show);

  clientOptions(servers.command('add'))
    .description('add a backup server (tried after the ones already listed)')
    .argument('<url>', 'e.g. ws://192.168.1.20:8447')
    .action(async (url: string, opts: ClientOptions) => {
      const u = normalizeServerUrl(url);
      const profile = await openProfile(ctx, opts);
      if (profile.data.server === u) throw usageError(`${u} is this account's server already`);
      await profile.update((d) => {
        if (!d.backupServers.includes(u)) d.backupServers.push(u);
      });
      await show(opts);
    });

  clientOptions(servers.command('remove'))
    .description('remove a backup server')
    .argument('<url>')
    .action(async (url: string, opts: ClientOptions) => {
      const u = normalizeServerUrl(url);
      const profile = await openProfile(ctx, opts);
      if (!profile.data.backupServers.includes(u)) throw usageError(`${u} is not a backup server`);
      await profile.update((d) => {
        d.backupServers = d.backupServers.filter((x) => x !== u);
      });
      await show(opts);
    });
}
