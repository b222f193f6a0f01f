import type { Command } from 'commander';
import {
  ConfigError,
  type ConfigFlags,
  defaultConfig,
  type PmbConfig,
  resolveConfig,
} from '../../appliance/config.js';
import { type CheckResult, runDoctor } from '../../appliance/doctor.js';
import { defaultDataDir } from '../../appliance/paths.js';
import { configOptions } from '../config-options.js';
import { type CliContext, print, printJson } from '../context.js';

const MARK = { ok: 'ok  ', warn: 'WARN', fail: 'FAIL', skip: '-   ' } as const;

export function register(program: Command, ctx: CliContext): void {
  configOptions(
    program
      .command('doctor')
      .description('check the server and this box, and say in plain words what to fix')
      .addHelpText(
        'after',
        '\nExit status 0 when nothing needs fixing, 1 when something does (a FAIL line).',
      ),
  )
    .option('--json', 'print {ok, checks: [{name, status, message, advice}]}')
    .action(async (flags: ConfigFlags & { json?: boolean }) => {
      const checks: CheckResult[] = [];
      let config: PmbConfig;
      try {
        config = resolveConfig({ flags, env: ctx.env }).config;
        checks.push({
          name: 'config',
          status: 'ok',
          message: 'settings are valid (pmb config show lists them)',
        });
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        checks.push({ name: 'config', status: 'fail', message: err.message, advice: 'fix that setting' });
        // Carry on with the defaults where they are needed: the rest may still tell something useful.
        config = defaultConfig(flags.dataDir ?? defaultDataDir(ctx.env));
      }
      const report = await runDoctor({ config, env: ctx.env });
      checks.push(...report.checks);
      const ok = !checks.some((c) => c.status === 'fail');
      if (flags.json) printJson(ctx, { ok, checks });
      else {
        for (const c of checks) {
          print(
            ctx,
            `${MARK[c.status]}  ${c.name.padEnd(8)}  ${c.message}${c.advice ? `\n${' '.repeat(16)}-> ${c.advice}` : ''}`,
          );
        }
        print(ctx, ok ? 'Nothing needs fixing.' : 'Something needs fixing (see FAIL above).');
      }
      if (!ok) ctx.exitCode = 1;
    });
}
