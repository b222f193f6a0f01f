import type { HistoryEntry } from './history.js';
import type { Profile } from './profile.js';

const pad = (n: number) => String(n).padStart(2, '0');

/** HH:MM today, else YYYY-MM-DD HH:MM, local time. */
export function formatTime(ms: number, now = Date.now()): string {
  const d = new Date(ms);
  const today = new Date(now);
  const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  if (d.toDateString() === today.toDateString()) return hm;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${hm}`;
}

/** `[12:03] alice@a.test: hi` or, for what this account sent, `[12:04] me -> alice@a.test: hello`. */
export function formatMessage(profile: Profile, e: HistoryEntry): string {
  const text = e.text.replace(/\n/g, '\n    ');
  if (e.outgoing) {
    const to = e.to.length === 1 && e.to[0] ? profile.nameOf(e.to[0], e.toAddress) : `${e.to.length} people`;
    return `[${formatTime(e.ts)}] me -> ${to}: ${text}`;
  }
  return `[${formatTime(e.ts)}] ${profile.nameOf(e.from, e.fromAddress)}: ${text}`;
}

/** The stable JSON shape of a message for scripts. */
export function messageJson(profile: Profile, e: HistoryEntry): Record<string, unknown> {
  return {
    id: e.id,
    from: e.from,
    fromAddress: e.fromAddress ?? profile.addressOf(e.from),
    to: e.to,
    toAddress: e.toAddress ?? (e.to[0] ? profile.addressOf(e.to[0]) : undefined),
    text: e.text,
    kind: e.kind,
    ts: e.ts,
    received: e.received,
    outgoing: e.outgoing,
  };
}

export function preview(text: string, max = 60): string {
  const one = text.replace(/\s+/g, ' ').trim();
  return one.length > max ? `${one.slice(0, max - 1)}…` : one;
}
