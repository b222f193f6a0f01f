import type { Command } from 'commander';
import { PmbError } from '../../protocol/errors.js';
import { type CliContext, note, print, printJson } from '../context.js';
import { CliError, usageError } from '../errors.js';
import { type ClientOptions, clientOptions, openProfile } from '../options.js';

interface RegisterOptions extends ClientOptions {
  server?: string;
  invite?: string;
}

export function register(program: Command, ctx: CliContext): void {
  clientOptions(program.command('register'))
    .description('register NICK@DOMAIN on a server (makes an identity first if this profile has none)')
    .argument('<address>', 'nick@domain: the domain must be the one the server registers for')
    .option('--server <url>', 'the server, e.g. ws://192.168.1.10:8447')
    .option('--invite <code>', 'invite code from the server admin (pmb invite)')
    .action(async (address: string, opts: RegisterOptions) => {
      const { parseAddress } = await import('../../protocol/schemas.js');
      const addr = parseAddress(address);
      if (!addr) {
        throw usageError(
          `"${address}" is not nick@domain (nick: 2-32 of a-z 0-9 . _ -, starting with a letter or digit)`,
        );
      }
      const { createIdentity, readPassphrase } = await import('../identity.js');
      const { Session } = await import('../session.js');
      const profile = await openProfile(ctx, opts);
      const full = `${addr.nick}@${addr.domain}`;
      if (profile.data.address && profile.data.address !== full) {
        throw new CliError(
          'already_registered',
          `This profile is already ${profile.data.address}; use another --profile for another account`,
        );
      }
      const server = opts.server ?? profile.data.server;
      if (!server) throw usageError('Which server? Pass --server URL (e.g. ws://HOST:8447)');
      if ((await profile.readSecretKey()) === undefined) {
        const identity = await createIdentity(profile, await readPassphrase(opts, ctx.env));
        note(ctx, `Made a new identity ${identity.fingerprint}`);
      }
      const session = await Session.open(ctx, { ...opts, profile, server, login: false });
      try {
        const domain = session.client.server.domain;
        if (domain !== addr.domain) {
          throw new PmbError(
            'wrong_domain',
            `${session.url} registers names @${domain}, not @${addr.domain} (try ${addr.nick}@${domain})`,
          );
        }
        await session.client.register(addr.nick, opts.invite ? { invite: opts.invite.trim() } : {});
        const login = await session.login();
        await profile.update((d) => {
          d.address = full;
          d.server = session.url;
          d.serverFingerprint = session.client.server.fingerprint;
          d.fingerprint = login.fingerprint;
        });
        if (opts.json) {
          printJson(ctx, {
            address: full,
            fingerprint: login.fingerprint,
            server: session.url,
            device: login.device,
          });
        } else {
          print(ctx, `Registered ${full} on ${session.url}`);
          print(ctx, `Fingerprint ${login.fingerprint}, device ${login.device}`);
        }
      } catch (err) {
        if (err instanceof PmbError && err.code === 'nickname_taken') {
          throw new PmbError('nickname_taken', `${full} is taken; pick another nickname`);
        }
        throw err;
      } finally {
        await session.close();
      }
    });
}
