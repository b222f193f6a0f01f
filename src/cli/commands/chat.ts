import { clearLine, createInterface, cursorTo, type Interface } from 'node:readline';
import type { Command } from 'commander';
import { PmbError } from '../../protocol/errors.js';
import { type CliContext, note, print, printJson } from '../context.js';
import { describeError } from '../errors.js';
import { formatMessage, messageJson } from '../format.js';
import { type HistoryEntry, peerOf } from '../history.js';
import { type ClientOptions, clientOptions, openProfile, parseIntOption } from '../options.js';
import { markRead } from './inbox.js';

export function register(program: Command, ctx: CliContext): void {
  clientOptions(program.command('chat'))
    .description('chat with someone: shows recent history, then live messages; each line you type is sent')
    .argument('<who>', 'nick@domain, fingerprint, or a name from your roster')
    .option(
      '--history <n>',
      'how many earlier messages to show (default 20)',
      parseIntOption('--history', 0, 10_000),
    )
    .addHelpText('after', '\nEnd with /quit or Ctrl-D. Works with piped input too: each line is one message.')
    .action(async (who: string, opts: ClientOptions & { history?: number }) => {
      const { Session } = await import('../session.js');
      const profile = await openProfile(ctx, opts);
      const s = await Session.open(ctx, { ...opts, profile, login: false });
      const tty = Boolean(ctx.stdin.isTTY && ctx.stdout.isTTY) && !opts.json;
      let rl: Interface | undefined;
      const seen: HistoryEntry[] = [];
      try {
        const self = s.identity.fingerprint;
        const peer = await s.resolve(who);
        const name = profile.nameOf(peer.fingerprint, peer.address);
        const show = (e: HistoryEntry) => {
          seen.push(e);
          if (opts.json) printJson(ctx, messageJson(profile, e));
          else if (!tty) print(ctx, formatMessage(profile, e));
          else {
            // Print above the line being typed, then redraw it.
            clearLine(ctx.stdout, 0);
            cursorTo(ctx.stdout, 0);
            print(ctx, formatMessage(profile, e));
            rl?.prompt(true);
          }
        };
        const earlier = s.history.entries.filter((x) => peerOf(x, self) === peer.fingerprint);
        const n = opts.history ?? 20;
        for (const e of n > 0 ? earlier.slice(-n) : []) show(e);
        s.onMessage = (e) => {
          if (peerOf(e, self) === peer.fingerprint) show(e);
          else if (!e.outgoing)
            note(ctx, `(new message from ${profile.nameOf(e.from, e.fromAddress)}; see pmb inbox)`);
        };
        await s.login();
        note(ctx, `Chatting with ${name}. End with /quit or Ctrl-D.`);
        // Made only now: stdin stays unread (buffered in the pipe) until someone listens to it.
        const lines = createInterface({
          input: ctx.stdin,
          ...(tty ? { output: ctx.stdout, terminal: true, prompt: '> ' } : { terminal: false }),
        });
        rl = lines;
        // In a terminal readline takes Ctrl-C itself (no process signal): make it end the chat too.
        lines.on('SIGINT', () => lines.close());
        const stop = () => lines.close();
        ctx.signal.addEventListener('abort', stop, { once: true });
        void s.closed.then(() => {
          if (s.lost) {
            ctx.exitCode = 1;
            note(ctx, `pmb: the connection to ${s.url} was lost`);
            lines.close();
          }
        });
        if (tty) lines.prompt();
        for await (const raw of lines) {
          const line = raw.trim();
          if (line === '/quit') break;
          if (line) {
            try {
              const { entry } = await s.send(peer.fingerprint, peer.address, line);
              seen.push(entry);
              if (opts.json) printJson(ctx, messageJson(profile, entry));
            } catch (err) {
              // One failed line does not end the chat; the exit code says something was not sent.
              ctx.exitCode = 1;
              const r = describeError(err);
              ctx.stderr.write(
                opts.json
                  ? `${JSON.stringify({ error: { code: r.code, message: `not sent: ${r.message}` } })}\n`
                  : `pmb: not sent: ${r.message}\n`,
              );
              if (err instanceof PmbError && err.code === 'unavailable') break;
            }
          }
          if (tty) lines.prompt();
        }
        ctx.signal.removeEventListener('abort', stop);
      } finally {
        rl?.close();
        await s.close();
        await markRead(profile, seen, s.identity.fingerprint);
      }
    });
}
