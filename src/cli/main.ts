import { Command, CommanderError } from 'commander';
import * as backup from './commands/backup.js';
import * as chat from './commands/chat.js';
import * as chats from './commands/chats.js';
import * as configCmd from './commands/config.js';
import * as doctor from './commands/doctor.js';
import * as id from './commands/id.js';
import * as inbox from './commands/inbox.js';
import * as init from './commands/init.js';
import * as invite from './commands/invite.js';
import * as login from './commands/login.js';
import * as lookup from './commands/lookup.js';
import * as registerCmd from './commands/register.js';
import * as roster from './commands/roster.js';
import * as send from './commands/send.js';
import * as serve from './commands/serve.js';
import * as servers from './commands/servers.js';
import * as upgrade from './commands/upgrade.js';
import type { CliContext } from './context.js';
import { describeError } from './errors.js';
import { VERSION } from './version.js';

const COMMANDS = [
  serve,
  invite,
  id,
  registerCmd,
  login,
  send,
  inbox,
  chat,
  chats,
  roster,
  lookup,
  servers,
  backup,
  upgrade,
];
/** First-run, configuration and health of the home server. */
const APPLIANCE_COMMANDS = [init, configCmd, doctor];

export function buildProgram(ctx: CliContext): Command {
  const program = new Command('pmb')
    .description('PMB: federated, end-to-end encrypted messenger. Server and client in one program.')
    .version(VERSION, '-V, --version')
    .exitOverride()
    .configureOutput({
      writeOut: (s) => ctx.stdout.write(s),
      writeErr: (s) => ctx.stderr.write(s),
      outputError: (s, write) => {
        const message = s.replace(/^error: /, '').trim();
        write(ctx.json ? `${JSON.stringify({ error: { code: 'usage', message } })}\n` : `pmb: ${message}\n`);
      },
    })
    .showSuggestionAfterError(true)
    .hook('preAction', (_self, action) => {
      ctx.json = Boolean(action.opts().json);
    });
  program.addHelpText(
    'after',
    `
Getting started:
  pmb init                       on the home box: domain, your account, who may register
  pmb serve                      on the home box (add --host 0.0.0.0 to be reachable on the LAN)
  pmb invite                     on the box: a one-time code for someone to join
  pmb register alice@box.local --server ws://box:8447 --invite CODE
  pmb send bob@box.local "hello"
  pmb inbox                      (or: pmb chat bob@box.local)

Every client command takes --profile DIR (default $PMB_PROFILE or ~/.config/pmb) and --json.`,
  );
  for (const c of COMMANDS) c.register(program, ctx);
  for (const c of APPLIANCE_COMMANDS) c.register(program, ctx);
  return program;
}

/** Runs one command line; returns the exit code. Never calls process.exit. */
export async function main(argv: string[], ctx: CliContext): Promise<number> {
  // Before parsing succeeds the preAction hook has not run: guess from the arguments.
  ctx.json = argv.slice(2).includes('--json');
  const program = buildProgram(ctx);
  try {
    await program.parseAsync(argv);
    return ctx.exitCode;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    const r = describeError(err);
    if (ctx.json) ctx.stderr.write(`${JSON.stringify({ error: { code: r.code, message: r.message } })}\n`);
    else ctx.stderr.write(`pmb: ${r.message}\n`);
    if (r.stack && ctx.env.PMB_DEBUG) ctx.stderr.write(`${r.stack}\n`);
    return r.exitCode;
  }
}

/** The process glue: signals -> AbortController, result -> process.exitCode. */
export async function run(): Promise<void> {
  const ac = new AbortController();
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    signals++;
    // A second Ctrl-C means "now": the one place that may cut cleanup short.
    if (signals > 1) process.exit(130);
    ac.abort(new Error(sig));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // `pmb inbox | head -1`: a reader that went away is not an error worth a stack trace.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
  });
  const ctx: CliContext = {
    signal: ac.signal,
    env: process.env,
    stdin: process.stdin,
    stdout: process.stdout,
    stderr: process.stderr,
    json: false,
    exitCode: 0,
  };
  try {
    process.exitCode = await main(process.argv, ctx);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
