import type { Command } from 'commander';
import { type CliContext, print, printJson } from '../context.js';
import { CliError, usageError } from '../errors.js';
import { type ClientOptions, clientOptions, openProfile } from '../options.js';
import { DEFAULT_GROUP, type Profile, type RosterEntry, shortFingerprint } from '../profile.js';

export interface RosterGroup {
  group: string;
  contacts: RosterEntry[];
}

/** Categories alphabetically, contacts by name within each: a stable order, unlike the chat list. */
export function groupRoster(roster: RosterEntry[]): RosterGroup[] {
  const groups = new Map<string, RosterEntry[]>();
  for (const c of roster) {
    const list = groups.get(c.group) ?? [];
    list.push(c);
    groups.set(c.group, list);
  }
  const label = (c: RosterEntry) => (c.name ?? c.address ?? c.fingerprint).toLowerCase();
  return [...groups]
    .sort(([a], [b]) => a.localeCompare(b, undefined, { sensitivity: 'base' }))
    .map(([group, contacts]) => ({
      group,
      contacts: contacts.sort((a, b) => label(a).localeCompare(label(b))),
    }));
}

function contactJson(c: RosterEntry) {
  return { fingerprint: c.fingerprint, address: c.address ?? null, name: c.name ?? null, group: c.group };
}

function describe(c: RosterEntry): string {
  const main = c.name ?? c.address ?? shortFingerprint(c.fingerprint);
  return c.name && c.address ? `${main} (${c.address})` : main;
}

function groupName(text: string): string {
  const g = text.trim();
  if (!g || g.length > 64) throw usageError('A group name is 1-64 characters');
  return g;
}

function findOrFail(profile: Profile, who: string): RosterEntry {
  const c = profile.findContact(who);
  if (!c) throw new CliError('not_found', `${who} is not in your roster (see pmb roster)`);
  return c;
}

export function register(program: Command, ctx: CliContext): void {
  const roster = program
    .command('roster')
    .description('your contacts, sorted into groups (list, add, move, remove)');

  clientOptions(roster.command('list', { isDefault: true }))
    .description('list contacts by group (the default)')
    .action(async (opts: ClientOptions) => {
      const profile = await openProfile(ctx, opts);
      const groups = groupRoster(profile.data.roster);
      if (opts.json) {
        printJson(
          ctx,
          groups.map((g) => ({ group: g.group, contacts: g.contacts.map(contactJson) })),
        );
        return;
      }
      if (groups.length === 0) {
        print(ctx, 'Your roster is empty. Add someone: pmb roster add NICK@DOMAIN [--group G]');
        return;
      }
      for (const g of groups) {
        print(ctx, g.group);
        for (const c of g.contacts) print(ctx, `  ${describe(c)}`);
      }
    });

  clientOptions(roster.command('add'))
    .description('look someone up and add them (their key fingerprint is pinned)')
    .argument('<who>', 'nick@domain or fingerprint')
    .option('--group <group>', `group (default "${DEFAULT_GROUP}")`)
    .option('--name <name>', 'what to call them')
    .action(async (who: string, opts: ClientOptions & { group?: string; name?: string }) => {
      const profile = await openProfile(ctx, opts);
      const group = opts.group === undefined ? undefined : groupName(opts.group);
      let contact = profile.findContact(who);
      if (!contact) {
        const q = who.trim().toLowerCase();
        const { withSession } = await import('../session.js');
        const found = await withSession(ctx, { ...opts, profile, login: false }, (s) => s.client.lookup(q));
        const address = q.includes('@') ? q : found.addresses[0];
        contact = profile.data.roster.find((c) => c.fingerprint === found.fingerprint);
        if (!contact) {
          contact = {
            fingerprint: found.fingerprint,
            ...(address ? { address } : {}),
            group: group ?? DEFAULT_GROUP,
            added: Date.now(),
          };
        }
      }
      const fp = contact.fingerprint;
      const entry: RosterEntry = {
        ...contact,
        ...(group ? { group } : {}),
        ...(opts.name?.trim() ? { name: opts.name.trim() } : {}),
      };
      await profile.update((d) => {
        d.roster = [...d.roster.filter((c) => c.fingerprint !== fp), entry];
      });
      if (opts.json) printJson(ctx, contactJson(entry));
      else print(ctx, `${describe(entry)} is in ${entry.group} (${shortFingerprint(fp)})`);
    });

  clientOptions(roster.command('move'))
    .description('move a contact to another group')
    .argument('<who>', 'nick@domain, fingerprint or name')
    .requiredOption('--group <group>', 'the new group')
    .action(async (who: string, opts: ClientOptions & { group: string }) => {
      const profile = await openProfile(ctx, opts);
      const group = groupName(opts.group);
      const fp = findOrFail(profile, who).fingerprint;
      let moved: RosterEntry | undefined;
      await profile.update((d) => {
        moved = d.roster.find((c) => c.fingerprint === fp);
        if (moved) moved.group = group;
      });
      if (!moved) throw new CliError('not_found', `${who} is not in your roster (see pmb roster)`);
      if (opts.json) printJson(ctx, contactJson(moved));
      else print(ctx, `${describe(moved)} moved to ${group}`);
    });

  clientOptions(roster.command('remove'))
    .description('remove a contact (history stays)')
    .argument('<who>', 'nick@domain, fingerprint or name')
    .action(async (who: string, opts: ClientOptions) => {
      const profile = await openProfile(ctx, opts);
      const c = findOrFail(profile, who);
      await profile.update((d) => {
        d.roster = d.roster.filter((r) => r.fingerprint !== c.fingerprint);
      });
      if (opts.json) printJson(ctx, { removed: contactJson(c) });
      else print(ctx, `Removed ${describe(c)}`);
    });
}
