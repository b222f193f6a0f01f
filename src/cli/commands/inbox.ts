import type { Command } from 'commander';
import { PmbError } from '../../protocol/errors.js';
import { type CliContext, print, printJson } from '../context.js';
import { formatMessage, messageJson } from '../format.js';
import { type HistoryEntry, peerOf } from '../history.js';
import {
  aborted,
  type ClientOptions,
  clientOptions,
  openProfile,
  parsePositiveNumber,
  sleep,
} from '../options.js';
import type { Profile } from '../profile.js';

export function register(program: Command, ctx: CliContext): void {
  clientOptions(program.command('inbox'))
    .description('fetch and show new messages, then exit (or keep listening with --wait)')
    .option(
      '--wait <seconds>',
      'keep listening this long after catching up',
      parsePositiveNumber('--wait', 86_400 * 365),
    )
    .action(async (opts: ClientOptions & { wait?: number }) => {
      const { Session } = await import('../session.js');
      const profile = await openProfile(ctx, opts);
      const shown: HistoryEntry[] = [];
      const show = (e: HistoryEntry) => {
        shown.push(e);
        if (opts.json) printJson(ctx, messageJson(profile, e));
        else print(ctx, formatMessage(profile, e));
      };
      const s = await Session.open(ctx, { ...opts, profile, login: false });
      try {
        const self = s.identity.fingerprint;
        // Mail an earlier command (send, a chat with someone else) stored but did not show.
        for (const e of unread(profile, s.history.entries, self)) show(e);
        s.onMessage = show;
        await s.login();
        await Promise.race([s.synced(), aborted(ctx.signal)]);
        if (opts.wait && !ctx.signal.aborted) {
          await Promise.race([sleep(opts.wait * 1000, ctx.signal), s.closed]);
        }
        if (s.lost) throw new PmbError('unavailable', `The connection to ${s.url} was lost`);
      } finally {
        await s.close();
        await markRead(profile, shown, s.identity.fingerprint);
      }
      if (shown.length === 0 && !opts.json) print(ctx, 'No new messages.');
    });
}

/** Incoming messages stored after their chat's read mark. */
export function unread(profile: Profile, entries: HistoryEntry[], self: string): HistoryEntry[] {
  return entries.filter(
    (e) => !e.outgoing && e.stored > (profile.data.chats[peerOf(e, self)]?.readUpTo ?? 0),
  );
}

export async function markRead(profile: Profile, entries: HistoryEntry[], self: string): Promise<void> {
  if (entries.length === 0) return;
  const marks = new Map<string, number>();
  for (const e of entries) {
    const peer = peerOf(e, self);
    marks.set(peer, Math.max(marks.get(peer) ?? 0, e.stored));
  }
  await profile.update((d) => {
    for (const [peer, mark] of marks) {
      const chat = d.chats[peer] ?? {};
      chat.readUpTo = Math.max(chat.readUpTo ?? 0, mark);
      d.chats[peer] = chat;
    }
  });
}
