import type { Command } from 'commander';
import { type CliContext, print, printJson } from '../context.js';
import { type ClientOptions, clientOptions, openProfile } from '../options.js';

export function register(program: Command, ctx: CliContext): void {
  clientOptions(program.command('login'))
    .description(
      "log in with this profile's identity (e.g. one imported on a new device) and remember the server",
    )
    .option('--server <url>', 'the server, e.g. ws://192.168.1.10:8447 (default: the saved one)')
    .option(
      '--accept-server-key',
      "trust the server's current key even if it differs from the one pinned before",
    )
    .action(async (opts: ClientOptions & { server?: string; acceptServerKey?: boolean }) => {
      const { Session, addressFrom } = await import('../session.js');
      const profile = await openProfile(ctx, opts);
      const session = await Session.open(ctx, { ...opts, profile, login: false });
      try {
        const res = await session.login();
        const address = addressFrom(res.bindings, res.fingerprint) ?? profile.data.address;
        await profile.update((d) => {
          d.server = session.url;
          d.serverFingerprint = session.client.server.fingerprint;
          d.fingerprint = res.fingerprint;
          if (address) d.address = address;
        });
        if (opts.json) {
          printJson(ctx, {
            address: address ?? null,
            fingerprint: res.fingerprint,
            server: session.url,
            device: res.device,
          });
        } else {
          print(ctx, `Logged in as ${address ?? res.fingerprint} on ${session.url} (device ${res.device})`);
        }
      } finally {
        await session.close();
      }
    });
}
