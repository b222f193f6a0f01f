import { execFile, spawn } from 'node:child_process';
import { access } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import type { Command } from 'commander';
import { type CliContext, note, print, printJson } from '../context.js';
import { CliError, usageError } from '../errors.js';
import { parsePositiveNumber } from '../options.js';
import { dataDirOf, wrap } from './backup.js';

interface UpgradeFlags {
  check?: boolean;
  source?: string;
  yes?: boolean;
  target?: string;
  dataDir?: string;
  config?: string;
  restartCommand?: string;
  healthTimeout?: number;
  backup?: boolean;
  json?: boolean;
}

/** The systemd unit install.sh installs. */
const SERVICE = 'pmb';

export function register(program: Command, ctx: CliContext): void {
  program
    .command('upgrade')
    .description(
      'install the newest signed PMB release: verify, back up, swap, restart, roll back on failure',
    )
    .option('--check', 'only say which version is installed and which is available')
    .option(
      '--source <url|dir>',
      'release directory URL (https://) or local directory (default: $PMB_UPGRADE_SOURCE)',
    )
    .option('-y, --yes', 'do not ask before upgrading')
    .option('--target <file>', 'the pmb binary to replace (default: the running executable)')
    .option(
      '--config <file>',
      'config file naming the data dir (default: $PMB_CONFIG, else /etc/pmb/pmb.toml)',
    )
    .option('--data-dir <dir>', "the server's data dir, backed up first (default: from the configuration)")
    .option(
      '--restart-command <cmd>',
      'how to restart the server (default: systemctl restart pmb under systemd)',
    )
    .option(
      '--health-timeout <seconds>',
      'how long the new version has to report healthy before it is rolled back (default 60)',
      parsePositiveNumber('--health-timeout', 3600),
    )
    .option('--no-backup', 'skip the backup taken before the binary is replaced')
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      `
Only releases whose manifest is signed by the PMB release key built into this program are installed, and
only a binary whose SHA-256 and size match that manifest. The replaced binary is kept as pmb.previous; if
the new version does not answer GET /health with its version in time, pmb.previous is put back and the
service restarted again.`,
    )
    .action(async (flags: UpgradeFlags) => {
      const { checkForUpgrade, parseSource, upgrade } = await import('../../appliance/upgrade.js');
      const { currentPlatform, releaseKeys } = await import('../../appliance/release-manifest.js');
      const { RELEASE_PUBLIC_KEY } = await import('../../appliance/release-key.js');
      const { VERSION } = await import('../version.js');

      const sourceText = flags.source ?? ctx.env.PMB_UPGRADE_SOURCE;
      if (!sourceText) {
        throw usageError('No release source: pass --source URL|DIR or set PMB_UPGRADE_SOURCE');
      }
      const platform = currentPlatform();
      if (!platform) {
        throw new CliError('unsupported', `PMB ships no binary for ${process.platform}-${process.arch}`);
      }
      const source = await wrap(async () => parseSource(sourceText));
      // The one place trust comes from: the key compiled into this program. No flag or variable changes it.
      const trustedKeys = await releaseKeys([RELEASE_PUBLIC_KEY]);

      if (flags.check) {
        const c = await wrap(() =>
          checkForUpgrade({ source, trustedKeys, currentVersion: VERSION, platform, signal: ctx.signal }),
        );
        if (flags.json) {
          printJson(ctx, { current: c.current, available: c.available, newer: c.newer, date: c.date });
        } else if (c.newer) {
          print(ctx, `pmb ${c.current} is installed; ${c.available} (${c.date.slice(0, 10)}) is available.`);
          if (c.notes) print(ctx, c.notes);
          if (!c.hasBinary) note(ctx, `(but without a binary for ${platform})`);
        } else {
          print(ctx, `pmb ${c.current} is up to date (the newest release is ${c.available}).`);
        }
        return;
      }

      const target = resolve(flags.target ?? runningExecutable());
      const dataDir = dataDirOf(ctx, flags);
      const { findServingServer } = await import('../../appliance/backup-running.js');
      const running = await wrap(() => findServingServer(dataDir, ctx.signal));

      let restart: (() => Promise<void>) | undefined;
      if (flags.restartCommand) {
        const cmd = flags.restartCommand;
        restart = () => runShell(cmd);
      } else if (await systemdActive()) {
        if (!running) {
          throw new CliError(
            'no_server',
            `The ${SERVICE} service runs, but no server answers for ${dataDir}: pass its --data-dir ` +
              '(e.g. /var/lib/pmb), so the upgrade can back it up and check its health',
          );
        }
        restart = () => runFile('systemctl', ['restart', SERVICE]);
      } else if (running) {
        throw new CliError(
          'cannot_restart',
          `A server runs on ${dataDir} (${running.url}) but not as the ${SERVICE} systemd service: ` +
            'pass --restart-command CMD, or stop it, upgrade, and start it again',
        );
      }

      const check = await wrap(() =>
        checkForUpgrade({ source, trustedKeys, currentVersion: VERSION, platform, signal: ctx.signal }),
      );
      if (!check.newer) {
        if (flags.json)
          printJson(ctx, { status: 'up-to-date', current: VERSION, available: check.available });
        else print(ctx, `pmb ${VERSION} is up to date (the newest release is ${check.available}).`);
        return;
      }
      if (!flags.yes) {
        if (!ctx.stdin.isTTY)
          throw usageError(`Upgrade ${target} to ${check.available}? Pass --yes to confirm`);
        const { createInterface } = await import('node:readline/promises');
        const rl = createInterface({ input: ctx.stdin, output: ctx.stdout });
        const answer = await rl.question(`Upgrade ${target} from ${VERSION} to ${check.available}? [y/N] `);
        rl.close();
        if (!/^y(es)?$/i.test(answer.trim())) {
          print(ctx, 'Nothing changed.');
          return;
        }
      }

      const hasDb = await access(join(dataDir, 'pmb.db')).then(
        () => true,
        () => false,
      );
      const backup =
        flags.backup !== false && (running || hasDb)
          ? async () => {
              const { createBackup } = await import('../../appliance/backup.js');
              return (await createBackup({ dataDir, pmbVersion: VERSION, signal: ctx.signal })).path;
            }
          : undefined;
      const progress = ctx.stdout.isTTY && !flags.json ? progressLine(ctx, check.available) : undefined;
      const result = await wrap(() =>
        upgrade({
          source,
          trustedKeys,
          currentVersion: VERSION,
          platform,
          target,
          ...(backup ? { backup } : {}),
          ...(restart ? { restart } : {}),
          ...(running ? { healthUrl: running.httpUrl } : {}),
          healthTimeoutMs: (flags.healthTimeout ?? 60) * 1000,
          ...(progress ? { onProgress: progress } : {}),
          onStep: (line) => note(ctx, line),
          signal: ctx.signal,
        }),
      );
      if (flags.json) {
        printJson(ctx, result);
      } else if (result.status === 'upgraded') {
        print(
          ctx,
          `Upgraded pmb ${result.from} -> ${result.to}` +
            (result.restarted ? ', restarted and healthy.' : '. Start the server to run it.'),
        );
      } else {
        print(ctx, `pmb ${result.current} is up to date.`);
      }
    });
}

/**
 * The installed single binary is the running executable. Under node or bun from a checkout that is the
 * runtime itself, which an upgrade must never replace.
 */
function runningExecutable(): string {
  const exe = process.execPath;
  if (/^(node|nodejs|bun)(\.exe)?$/i.test(basename(exe))) {
    throw new CliError(
      'not_a_binary',
      `pmb is running under ${basename(exe)} (${exe}), not as the installed pmb binary, so there is nothing ` +
        'to replace: run the installed pmb (e.g. /usr/local/bin/pmb upgrade), or name the binary with --target FILE',
    );
  }
  return exe;
}

function systemdActive(): Promise<boolean> {
  return new Promise((resolve) => {
    execFile('systemctl', ['is-active', '--quiet', SERVICE], (err) => resolve(!err));
  });
}

function runFile(file: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(file, args, (err, _out, stderr) => {
      if (err) reject(new Error(`${file} ${args.join(' ')}: ${stderr.trim() || err.message}`));
      else resolve();
    });
  });
}

function runShell(cmd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/sh', ['-c', cmd], { stdio: ['ignore', 'ignore', 'inherit'] });
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} exited with ${code}`))));
  });
}

/** One line, rewritten in place: "Downloading pmb 0.2.0: 45% (12.3 of 27.0 MiB)". */
function progressLine(ctx: CliContext, version: string): (done: number, total: number) => void {
  let last = -1;
  return (done, total) => {
    const pct = Math.floor((done / total) * 100);
    if (pct === last) return;
    last = pct;
    const mib = (n: number) => (n / 1024 / 1024).toFixed(1);
    ctx.stdout.write(`\rDownloading pmb ${version}: ${pct}% (${mib(done)} of ${mib(total)} MiB)`);
    if (done >= total) ctx.stdout.write('\n');
  };
}
