import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline/promises';
import type { Command } from 'commander';
import { type ConfigFlags, type PmbConfig, REGISTRATION_POLICIES } from '../../appliance/config.js';
import {
  checkAnswers,
  readSetupToken,
  registerCommand,
  type SetupAnswers,
  SetupError,
} from '../../appliance/first-run.js';
import { localRequest } from '../../appliance/local-http.js';
import { clientUrl, findRunningServer, type RunningServer } from '../../appliance/running.js';
import { configOptions, loadConfig } from '../config-options.js';
import { type CliContext, note, print, printJson } from '../context.js';
import { CliError, usageError } from '../errors.js';

interface InitFlags extends ConfigFlags {
  admin?: string;
  yes?: boolean;
  showToken?: boolean;
  json?: boolean;
}

const FLAG_OF: Record<keyof SetupAnswers, string> = {
  domain: '--domain',
  registration: '--registration',
  admin: '--admin',
};

export function register(program: Command, ctx: CliContext): void {
  configOptions(
    program
      .command('init')
      .description('first-run setup in the terminal: domain, your admin account, who may register')
      .addHelpText(
        'after',
        `
Asks what it is not told; with --yes (or when not run in a terminal) it asks nothing: then --admin is
needed, and --yes takes the current domain and policy for --domain and --registration.
Saves the answers to <data-dir>/pmb.toml, makes the database and server key if needed, and prints an
invite code for your account. Works whether pmb serve is running or not.

  pmb init --domain home.example.org --admin alice --registration invite --yes`,
      ),
    { serverFlags: false },
  )
    .option('--domain <domain>', 'the domain addresses will end in (nick@domain)')
    .option('--admin <nick>', 'nickname of the first account, yours')
    .option('--registration <policy>', 'who may register: open, invite or closed')
    .option('-y, --yes', 'ask nothing: take the current values for what is not given')
    .option('--show-token', 'print the one-time setup token for the /setup page, and stop')
    .option('--json', 'print the result as JSON')
    .action(async (flags: InitFlags) => {
      const { config } = loadConfig(ctx, { ...pick(flags, 'config', 'dataDir') });
      if (flags.showToken) {
        const token = await readSetupToken(config.dataDir);
        if (!token) throw new CliError('setup_done', `No setup is pending in ${config.dataDir}: it is done`);
        if (flags.json) printJson(ctx, { token });
        else print(ctx, token);
        return;
      }
      const running = await findRunningServer(config.dataDir);
      const live = running && !running.error ? running : undefined;
      const answers = await ask(ctx, flags, config);
      const result = live
        ? await setupThroughServer(live, config, answers)
        : await setupOffline(config, answers);
      const serverUrl = clientUrl(config.publicUrl, live?.url ?? listenUrl(config));
      const command = registerCommand(result.admin, result.domain, serverUrl, result.invite.code);
      if (flags.json) {
        printJson(ctx, { ...result, server: serverUrl, register: command, running: Boolean(live) });
        return;
      }
      print(
        ctx,
        `Saved domain ${result.domain} and registration ${result.registration} to ${result.configFile}.`,
      );
      print(ctx, `Invite code for ${result.admin} (valid 7 days): ${result.invite.code}`);
      print(ctx, `Take your account with:\n  ${command}`);
      if (!live) print(ctx, `Then start the server: pmb serve --data-dir ${config.dataDir}`);
      for (const n of result.notes ?? []) note(ctx, `pmb: note: ${n}`);
    });
}

function pick<T extends object, K extends keyof T>(o: T, ...keys: K[]): Pick<T, K> {
  const out = {} as Pick<T, K>;
  for (const k of keys) if (o[k] !== undefined) out[k] = o[k];
  return out;
}

function listenUrl(config: PmbConfig): string {
  const host = config.host.includes(':') ? `[${config.host}]` : config.host;
  return `${config.tls || config.acme ? 'wss' : 'ws'}://${host}:${config.port}`;
}

/** The answers: from flags, else asked in a terminal, else (non-interactive) an error naming the flag. */
async function ask(ctx: CliContext, flags: InitFlags, config: PmbConfig): Promise<SetupAnswers> {
  const given: Partial<Record<keyof SetupAnswers, string>> = {
    domain: flags.domain,
    registration: flags.registration,
    admin: flags.admin,
  };
  const defaults: Partial<Record<keyof SetupAnswers, string>> = {
    domain: config.domain,
    registration: config.registration,
  };
  const interactive = Boolean(ctx.stdin.isTTY) && !flags.yes && !flags.json;
  if (!interactive) {
    for (const field of ['domain', 'admin', 'registration'] as const) {
      if (given[field] !== undefined) continue;
      if (flags.yes && defaults[field] !== undefined) given[field] = defaults[field];
      else {
        const why = flags.yes
          ? 'it has no default'
          : 'not run in a terminal: pass it, or --yes for the default';
        throw usageError(`${FLAG_OF[field]} is required (${why})`);
      }
    }
    return validate(given);
  }
  const rl = createInterface({ input: ctx.stdin, output: ctx.stderr, terminal: true });
  ctx.signal.addEventListener('abort', () => rl.close(), { once: true });
  const questions: Record<keyof SetupAnswers, string> = {
    domain: 'Domain (addresses will be nick@domain)',
    admin: 'Your nickname (the first account)',
    registration: `Who may register (${REGISTRATION_POLICIES.join(', ')})`,
  };
  try {
    for (const field of ['domain', 'admin', 'registration'] as const) {
      while (given[field] === undefined) {
        const d = defaults[field];
        const answer = (await rl.question(`${questions[field]}${d ? ` [${d}]` : ''}: `)).trim() || d;
        if (!answer) continue;
        try {
          checkOne(field, answer);
          given[field] = answer;
        } catch (err) {
          ctx.stderr.write(`  ${(err as Error).message}\n`);
        }
      }
    }
  } catch (err) {
    if (ctx.signal.aborted) throw new CliError('aborted', 'Setup cancelled');
    throw err;
  } finally {
    rl.close();
  }
  return validate(given);
}

/** Checks one answer alone (the others filled with valid stand-ins). */
function checkOne(field: keyof SetupAnswers, value: string): void {
  checkAnswers({ domain: 'a.test', registration: 'invite', admin: 'aa', [field]: value });
}

function validate(given: Partial<Record<keyof SetupAnswers, string>>): SetupAnswers {
  try {
    return checkAnswers(given);
  } catch (err) {
    if (err instanceof SetupError && err.field) throw usageError(`${FLAG_OF[err.field]}: ${err.message}`);
    throw err;
  }
}

interface InitResult extends SetupAnswers {
  invite: { code: string; expires: number };
  configFile: string;
  notes?: string[];
}

/** A server runs on the data dir: finish setup through it, with the token from the data dir. */
async function setupThroughServer(
  running: RunningServer,
  config: PmbConfig,
  answers: SetupAnswers,
): Promise<InitResult> {
  const token = await readSetupToken(config.dataDir);
  if (!token) throw alreadyDone(config);
  const res = await localRequest(`${running.base}/setup`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ token, ...answers, admin: { nick: answers.admin } }),
    timeoutMs: 30_000,
  });
  const body = JSON.parse(res.body || '{}') as InitResult & { error?: { code: string; message: string } };
  if (res.status !== 200) {
    if (body.error?.code === 'setup_done') throw alreadyDone(config);
    throw new CliError(
      body.error?.code ?? 'internal',
      body.error?.message ?? `The server answered HTTP ${res.status}`,
    );
  }
  return body;
}

/** No server runs: make the database and server key if needed, and finish setup directly. */
async function setupOffline(config: PmbConfig, answers: SetupAnswers): Promise<InitResult> {
  const { openStore } = await import('../../store/index.js');
  const { loadServerIdentity } = await import('../../server/server-identity.js');
  const { completeSetup, setupDone } = await import('../../appliance/first-run.js');
  await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
  const store = openStore(join(config.dataDir, 'pmb.db'));
  try {
    if (setupDone(store)) throw alreadyDone(config);
    await loadServerIdentity(store, answers.domain);
    return await completeSetup({ store, dataDir: config.dataDir, now: Date.now }, answers);
  } catch (err) {
    if (err instanceof SetupError) throw new CliError(err.code, err.message);
    throw err;
  } finally {
    store.close();
  }
}

function alreadyDone(config: PmbConfig): CliError {
  return new CliError(
    'setup_done',
    `${config.dataDir} is already set up (domain ${config.domain}): make invites with pmb invite --data-dir ${config.dataDir}`,
  );
}
