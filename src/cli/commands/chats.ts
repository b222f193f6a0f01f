import type { Command } from 'commander';
import { type CliContext, print, printJson } from '../context.js';
import { formatTime, preview } from '../format.js';
import { History, type HistoryEntry, peerOf } from '../history.js';
import { type ClientOptions, clientOptions, openProfile } from '../options.js';
import type { Profile } from '../profile.js';

export interface ChatSummary {
  contact: string;
  address: string | undefined;
  name: string;
  last: HistoryEntry;
  count: number;
  unread: number;
}

/** One line per conversation, the most recent first. Works offline, from the local history. */
export function summarizeChats(profile: Profile, entries: HistoryEntry[], self: string): ChatSummary[] {
  const byPeer = new Map<string, ChatSummary>();
  for (const e of entries) {
    const peer = peerOf(e, self);
    let c = byPeer.get(peer);
    if (!c) {
      const address = profile.addressOf(peer) ?? (e.outgoing ? e.toAddress : e.fromAddress);
      c = { contact: peer, address, name: profile.nameOf(peer, address), last: e, count: 0, unread: 0 };
      byPeer.set(peer, c);
    }
    c.count++;
    if (order(e) >= order(c.last)) c.last = e;
    if (!e.outgoing && e.stored > (profile.data.chats[peer]?.readUpTo ?? 0)) c.unread++;
  }
  return [...byPeer.values()].sort((a, b) => order(b.last) - order(a.last));
}

/** Server receipt time orders a conversation: one clock for both directions. */
function order(e: HistoryEntry): number {
  return e.received || e.ts;
}

export function register(program: Command, ctx: CliContext): void {
  clientOptions(program.command('chats'))
    .description(
      'your conversations, most recent first (from local history; run pmb inbox to fetch new ones)',
    )
    .action(async (opts: ClientOptions) => {
      const profile = await openProfile(ctx, opts);
      const history = await History.load(profile.historyFile);
      const self = profile.data.fingerprint ?? '';
      const chats = summarizeChats(profile, history.entries, self);
      if (opts.json) {
        printJson(
          ctx,
          chats.map((c) => ({
            contact: c.contact,
            address: c.address ?? null,
            name: c.name,
            lastText: c.last.text,
            lastTs: c.last.ts,
            lastOutgoing: c.last.outgoing,
            count: c.count,
            unread: c.unread,
          })),
        );
        return;
      }
      if (chats.length === 0) {
        print(ctx, 'No chats yet. Send one: pmb send NICK@DOMAIN "hello"');
        return;
      }
      const width = Math.min(32, Math.max(...chats.map((c) => c.name.length)));
      for (const c of chats) {
        const who = c.last.outgoing ? 'me: ' : '';
        const unread = c.unread ? `  (${c.unread} new)` : '';
        print(
          ctx,
          `${c.name.padEnd(width)}  [${formatTime(c.last.ts)}] ${who}${preview(c.last.text)}${unread}`,
        );
      }
    });
}
