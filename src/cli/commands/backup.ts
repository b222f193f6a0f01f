import type { Command } from 'commander';
import { configOptions, loadConfig } from '../config-options.js';
import { type CliContext, note, print, printJson } from '../context.js';
import { CliError } from '../errors.js';

interface BackupFlags {
  dataDir?: string;
  config?: string;
  json?: boolean;
}

export function register(program: Command, ctx: CliContext): void {
  const backup = program
    .command('backup')
    .description(
      "back up a server's data (identity key, accounts, mailboxes) or restore it onto a fresh box",
    );

  const create = backup
    .command('create')
    .description('write a backup archive; works while the server runs (it takes the snapshot itself)');
  configOptions(create, { serverFlags: false })
    .option('--out <file>', 'archive to write (default: <data-dir>/backups/pmb-backup-<time>.tar.gz)')
    .option('--json', 'print {path, size, sha256, fingerprint, created, via}')
    .addHelpText(
      'after',
      `
The archive (a .tar.gz with a manifest of SHA-256 hashes) holds the server's SECRET KEY and every
account and undelivered message: it is written readable by its owner only (0600). Keep it off shared
disks, or encrypt it (e.g. gpg --symmetric) before copying it elsewhere.`,
    )
    .action(async (flags: BackupFlags & { out?: string }) => {
      const { createBackup } = await import('../../appliance/backup.js');
      const { VERSION } = await import('../version.js');
      const dataDir = dataDirOf(ctx, flags);
      const r = await wrap(() =>
        createBackup({
          dataDir,
          pmbVersion: VERSION,
          signal: ctx.signal,
          ...(flags.out ? { out: flags.out } : {}),
          ...(ctx.env.PMB_ADMIN_TOKEN ? { adminToken: ctx.env.PMB_ADMIN_TOKEN } : {}),
        }),
      );
      if (flags.json) {
        printJson(ctx, {
          path: r.path,
          size: r.size,
          sha256: r.sha256,
          fingerprint: r.manifest.fingerprint,
          created: r.manifest.created,
          via: r.via,
        });
        return;
      }
      print(ctx, r.path);
      note(
        ctx,
        `Backup of server ${r.manifest.fingerprint} (${formatSize(r.size)}, ` +
          `${r.via === 'server' ? 'snapshot taken by the running server' : 'no server running'}).\n` +
          "It contains the server's secret key: it is readable only by you (0600); keep it private.",
      );
    });

  const restore = backup
    .command('restore <file>')
    .description(
      'restore a backup into an empty data dir (a fresh box); then pmb serve has the same identity',
    );
  configOptions(restore, { serverFlags: false })
    .option('--force', 'restore into a non-empty data dir, moving the files it replaces to replaced-<time>/')
    .option('--json', 'print {dataDir, fingerprint, created, replacedDir}')
    .action(async (file: string, flags: BackupFlags & { force?: boolean }) => {
      const { restoreBackup } = await import('../../appliance/backup.js');
      const dataDir = dataDirOf(ctx, flags);
      const r = await wrap(() =>
        restoreBackup({ file, dataDir, force: Boolean(flags.force), signal: ctx.signal }),
      );
      if (flags.json) {
        printJson(ctx, {
          dataDir: r.dataDir,
          fingerprint: r.manifest.fingerprint,
          created: r.manifest.created,
          replacedDir: r.replacedDir ?? null,
        });
        return;
      }
      print(
        ctx,
        `Restored server ${r.manifest.fingerprint} (backup of ${r.manifest.created}) into ${r.dataDir}`,
      );
      if (r.replacedDir) note(ctx, `The files it replaced are in ${r.replacedDir}`);
      const domain = r.manifest.domain ? ` --domain ${r.manifest.domain}` : '';
      note(ctx, `Start it with: pmb serve --data-dir ${r.dataDir}${domain} (or start the pmb service)`);
    });
}

/** --data-dir, else the data dir the configuration names (/etc/pmb/pmb.toml on a box set up by install.sh). */
export function dataDirOf(ctx: CliContext, flags: BackupFlags): string {
  return loadConfig(ctx, {
    ...(flags.dataDir ? { dataDir: flags.dataDir } : {}),
    ...(flags.config ? { config: flags.config } : {}),
  }).config.dataDir;
}

/** Appliance failures are expected ones: reported with their code, without a stack. */
export async function wrap<T>(work: () => Promise<T>): Promise<T> {
  const { ApplianceError } = await import('../../appliance/task-error.js');
  try {
    return await work();
  } catch (err) {
    if (err instanceof ApplianceError) throw new CliError(err.code, err.message);
    throw err;
  }
}

function formatSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}
