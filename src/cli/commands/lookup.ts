import type { Command } from 'commander';
import { type CliContext, print, printJson } from '../context.js';
import { type ClientOptions, clientOptions, openProfile } from '../options.js';

export function register(program: Command, ctx: CliContext): void {
  clientOptions(program.command('lookup'))
    .description('look someone up on your server: their key fingerprint, verified addresses and server')
    .argument('<who>', 'nick@domain or fingerprint')
    .option('--server <url>', 'ask this server instead of the saved one')
    .action(async (who: string, opts: ClientOptions & { server?: string }) => {
      const { withSession } = await import('../session.js');
      const profile = await openProfile(ctx, opts);
      const q = profile.findContact(who)?.fingerprint ?? who.trim().toLowerCase();
      const found = await withSession(ctx, { ...opts, profile, login: false, anonymous: true }, (s) =>
        s.client.lookup(q),
      );
      if (opts.json) {
        printJson(ctx, { fingerprint: found.fingerprint, addresses: found.addresses, server: found.server });
        return;
      }
      print(ctx, `fingerprint  ${found.fingerprint}`);
      print(ctx, `addresses    ${found.addresses.join(', ') || '(none verified)'}`);
      print(ctx, `server       ${found.server}`);
    });
}
