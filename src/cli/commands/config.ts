import type { Command } from 'commander';
import { type ConfigFlags, configEntries } from '../../appliance/config.js';
import { configOptions, loadConfig } from '../config-options.js';
import { type CliContext, print, printJson } from '../context.js';

export function register(program: Command, ctx: CliContext): void {
  const config = program.command('config').description('the server configuration');
  configOptions(
    config
      .command('show')
      .description('print the effective configuration and where each value comes from')
      .addHelpText(
        'after',
        `
Order (later wins): default <- config file (--config, $PMB_CONFIG or /etc/pmb/pmb.toml)
<- <data-dir>/pmb.toml <- PMB_* environment <- flags. Flags given here show what pmb serve would use.`,
      ),
  )
    .option('--json', 'print {files, settings: {key: {value, source, from}}}')
    .action((flags: ConfigFlags & { json?: boolean }) => {
      const resolved = loadConfig(ctx, flags);
      const entries = configEntries(resolved);
      if (flags.json) {
        const settings: Record<string, { value: unknown; source: string; from: string }> = {};
        for (const e of entries) {
          settings[e.key] = { value: e.value ?? null, source: e.origin.source, from: e.origin.from };
        }
        printJson(ctx, { files: resolved.files, settings });
        return;
      }
      print(ctx, `Config files: ${resolved.files.length > 0 ? resolved.files.join(', ') : 'none'}`);
      const width = Math.max(...entries.map((e) => e.key.length));
      const shown = entries.map((e) => showValue(e.value));
      const valueWidth = Math.min(48, Math.max(...shown.map((v) => v.length)));
      entries.forEach((e, i) => {
        const where =
          e.origin.source === 'default'
            ? `default (${e.origin.from})`
            : `${e.origin.source} ${e.origin.from}`;
        print(ctx, `${e.key.padEnd(width)}  ${shown[i]!.padEnd(valueWidth)}  ${where}`);
      });
    });
}

/** One setting's value as text: tables (the resolve map) as `key=value` pairs. */
function showValue(value: unknown): string {
  if (value === undefined) return '(unset)';
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const pairs = Object.entries(value).map(([k, v]) => `${k}=${String(v)}`);
    return pairs.length > 0 ? pairs.join(',') : '(none)';
  }
  return String(value);
}
