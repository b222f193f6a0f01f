import type { Command } from 'commander';
import { ConfigError, type ConfigFlags, type ResolvedConfig, resolveConfig } from '../appliance/config.js';
import type { CliContext } from './context.js';
import { usageError } from './errors.js';

/** The flags that override the configuration, shared by serve, config show, doctor and init. */
export function configOptions(cmd: Command, opts: { serverFlags?: boolean } = {}): Command {
  cmd
    .option('--config <file>', 'config file (default: $PMB_CONFIG, else /etc/pmb/pmb.toml if present)')
    .option(
      '--data-dir <dir>',
      'database, keys and admin token (default: $PMB_DATA_DIR or ~/.local/share/pmb)',
    );
  if (opts.serverFlags === false) return cmd;
  return cmd
    .option('--domain <domain>', 'domain this server registers nicknames for (default: <hostname>.local)')
    .option('--host <host>', 'address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)')
    .option('--port <port>', 'port (default 8447; 0 picks a free one)')
    .option('--registration <policy>', 'open, invite or closed (default invite)')
    .option('--log-level <level>', 'fatal, error, warn, info, debug or silent (default info)')
    .option('--public-url <url>', 'address clients should use, e.g. wss://pmb.example.org')
    .option('--tls-cert <file>', 'PEM certificate: serve https:// and wss:// (needs --tls-key)')
    .option('--tls-key <file>', 'PEM private key of --tls-cert')
    .option('--trust-proxy', 'take client addresses from X-Forwarded-For (behind a local reverse proxy)')
    .option(
      '--resolve <domain=host:port>',
      "where a domain's server is, instead of DNS (repeatable; host:port is http, https://host:port is https)",
      collect,
    )
    .option(
      '--peer <domain>',
      'keep a server link to this domain from the start, for directory replication (repeatable)',
      collect,
    );
}

/** Commander's parser for a repeatable option: every value, in order. */
function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** Resolves the configuration once; a bad value is a usage error naming its source. */
export function loadConfig(ctx: CliContext, flags: ConfigFlags): ResolvedConfig {
  try {
    return resolveConfig({ flags, env: ctx.env });
  } catch (err) {
    if (err instanceof ConfigError) throw usageError(err.message);
    throw err;
  }
}
