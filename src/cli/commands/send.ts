import type { Command } from 'commander';
import { type CliContext, note, print, printJson } from '../context.js';
import { usageError } from '../errors.js';
import { type ClientOptions, clientOptions, openProfile } from '../options.js';

export function register(program: Command, ctx: CliContext): void {
  clientOptions(program.command('send'))
    .description('send a message; returns once the server has stored it')
    .argument('<to>', 'nick@domain, fingerprint, or a name from your roster')
    .argument('<text...>', 'the message (several words are joined with spaces)')
    .action(async (to: string, words: string[], opts: ClientOptions) => {
      const text = words.join(' ');
      if (!text.trim()) throw usageError('The message is empty');
      const { withSession } = await import('../session.js');
      const profile = await openProfile(ctx, opts);
      let incoming = 0;
      await withSession(ctx, { ...opts, profile, login: true }, async (s) => {
        s.onMessage = (e) => {
          if (!e.outgoing) incoming++;
        };
        const peer = await s.resolve(to);
        const { entry, duplicate } = await s.send(peer.fingerprint, peer.address, text);
        if (opts.json) printJson(ctx, { id: entry.id, ts: entry.received, duplicate });
        else print(ctx, `Sent to ${profile.nameOf(peer.fingerprint, peer.address)} (id ${entry.id})`);
      });
      if (incoming > 0) note(ctx, `${incoming} new message${incoming === 1 ? '' : 's'} waiting: pmb inbox`);
    });
}
