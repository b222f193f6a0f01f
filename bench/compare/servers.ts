/**
 * Prosody and ejabberd as bench children: each in the foreground, as the current user, with a throwaway
 * config whose every path points into a temp dir, listening for c2s on a free 127.0.0.1 port, without TLS
 * (plain SASL on loopback, like PMB on ws://), in-band registration open, s2s and HTTP off. Everything else
 * is the server's default (profile 1: online delivery; no archive). With `{ archive: true }` (profile 2), each
 * keeps every message in a durable archive: mod_mam on SQLite (see startProsody and startEjabberd).
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../lib/child.js';

export const XMPP_DOMAIN = 'bench.test';

/** Where Debian's ejabberd package keeps its Erlang applications (ejabberdctl sets the same ERL_LIBS). */
const EJABBERD_LIBS = '/usr/lib/x86_64-linux-gnu';

export interface Daemon {
  name: string;
  pid: number;
  port: number;
  dir: string;
  version: string;
  proc: ChildProcess;
  /** The server's own log file, for a failure report. */
  logFile: string;
  /** Profile 2: the SQLite file that holds the archive (undefined in profile 1). */
  archiveDb?: string;
  stop(): Promise<void>;
}

const onPath = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

function dpkgVersion(pkg: string): string | undefined {
  // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's own format syntax
  const r = spawnSync('dpkg-query', ['-W', '-f', '${Status} ${Version}', pkg], { encoding: 'utf8' });
  const m = /install ok installed (\S+)/.exec(r.stdout ?? '');
  return m?.[1];
}

/**
 * What is missing to run the peers (with `archive`: also profile 2's packages), as a message naming them and
 * the apt command; undefined when all are there. The bench never installs anything itself.
 */
export function missingPeers(opts: { archive?: boolean } = {}): string | undefined {
  const missing: string[] = [];
  if (!onPath('prosody') || !dpkgVersion('prosody')) missing.push('prosody (the `prosody` command)');
  if (!onPath('erl') || !dpkgVersion('ejabberd') || !ejabberdEbin()) {
    missing.push(
      `ejabberd (the \`erl\` command and ejabberd's Erlang applications in ${EJABBERD_LIBS}/ejabberd-*)`,
    );
  }
  if (opts.archive) {
    // Profile 2: each server's SQLite driver, and the sqlite3 CLI that counts the archived rows.
    for (const pkg of ['lua-dbi-sqlite3', 'erlang-p1-sqlite3']) {
      if (!dpkgVersion(pkg)) missing.push(`${pkg} (profile 2's SQLite archive)`);
    }
    if (!onPath('sqlite3'))
      missing.push("sqlite3 (the `sqlite3` command, to count profile 2's archived rows)");
  }
  if (missing.length === 0) return undefined;
  return (
    `missing: ${missing.join('; ')}.\n` +
    'Install them (Debian/Ubuntu, as root) with:\n' +
    '  apt-get update && apt-get install -y prosody ejabberd lua-dbi-sqlite3 erlang-p1-sqlite3 sqlite3\n' +
    'Where systemd runs, the packages also start system services; the bench does not use them (it runs its ' +
    'own copies on free ports).'
  );
}

function ejabberdEbin(): string | undefined {
  try {
    return readdirSync(EJABBERD_LIBS).find((d) => d.startsWith('ejabberd-'));
  } catch {
    return undefined;
  }
}

export function peerVersions(): { prosody?: string; ejabberd?: string; erlang?: string } {
  const erts = spawnSync(
    'erl',
    ['-noshell', '-eval', 'io:put_chars(erlang:system_info(otp_release)), halt().'],
    {
      encoding: 'utf8',
    },
  );
  return { prosody: dpkgVersion('prosody'), ejabberd: dpkgVersion('ejabberd'), erlang: erts.stdout?.trim() };
}

/** Wait until 127.0.0.1:port accepts a connection, or the process exits, or 30 s pass. */
async function waitForPort(port: number, proc: ChildProcess, name: string, logFile: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) break;
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ host: '127.0.0.1', port });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  proc.kill('SIGKILL');
  const log = existsSync(logFile) ? readFileSync(logFile, 'utf8').slice(-2000) : '(no log)';
  throw new Error(`${name} did not listen on 127.0.0.1:${port} (exit ${proc.exitCode}); its log:\n${log}`);
}

function daemon(
  name: string,
  proc: ChildProcess,
  port: number,
  dir: string,
  version: string,
  logFile: string,
  archiveDb?: string,
) {
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  return {
    name,
    pid: proc.pid!,
    port,
    dir,
    version,
    proc,
    logFile,
    ...(archiveDb ? { archiveDb } : {}),
    async stop() {
      if (proc.exitCode === null) proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
      await rm(dir, { recursive: true, force: true });
    },
  } satisfies Daemon;
}

export interface PeerOptions {
  /**
   * Profile 2: a durable archive (XEP-0313, mod_mam) of every chat message, in SQLite. Neither server sets
   * a `synchronous` pragma, so SQLite's default applies: a rollback journal (journal_mode=DELETE) and
   * synchronous=FULL, i.e. every committed transaction is fsynced (several fsyncs per commit).
   */
  archive?: boolean;
}

/**
 * Prosody 0.12 in the foreground (`prosody --config FILE -F`). `run_as_root` only matters when the bench
 * runs as root (as in this container): Prosody otherwise refuses to start as root.
 * Archive (profile 2): mod_mam on, every store in SQL (`storage = "sql"`, driver SQLite3 from Debian's
 * lua-dbi-sqlite3, file `prosody.sqlite` in data_path), archiving on by default for every user
 * (`default_archive_policy = true`) and never expiring (`archive_expires_after = "never"`, so no cleanup job).
 */
export async function startProsody(opts: PeerOptions = {}): Promise<Daemon> {
  const dir = await mkdtemp(join(tmpdir(), 'pmb-compare-prosody-'));
  const port = await freePort();
  const data = join(dir, 'data');
  const certs = join(dir, 'certs');
  mkdirSync(data);
  mkdirSync(certs);
  const logFile = join(dir, 'prosody.log');
  const config = join(dir, 'prosody.cfg.lua');
  writeFileSync(
    config,
    [
      'run_as_root = true',
      'daemonize = false',
      `pidfile = "${join(dir, 'prosody.pid')}"`,
      `data_path = "${data}"`,
      `certificates = "${certs}"`,
      `log = { warn = "${logFile}" }`,
      'interfaces = { "127.0.0.1" }',
      `c2s_ports = { ${port} }`,
      's2s_ports = {}',
      'component_ports = {}',
      'http_ports = {}',
      'https_ports = {}',
      'c2s_require_encryption = false',
      'allow_unencrypted_plain_auth = true',
      'allow_registration = true',
      'min_seconds_between_registrations = 0',
      // The bench registers 100+ accounts from 127.0.0.1 in a few seconds.
      'registration_throttle_max = 100000',
      `modules_enabled = { "roster"; "saslauth"; "disco"; "ping"; "register"; "tls"${opts.archive ? '; "mam"' : ''} }`,
      'modules_disabled = { "s2s" }',
      ...(opts.archive
        ? [
            'storage = "sql"',
            'sql = { driver = "SQLite3", database = "prosody.sqlite" }',
            'default_archive_policy = true',
            'archive_expires_after = "never"',
          ]
        : []),
      `VirtualHost "${XMPP_DOMAIN}"`,
      '',
    ].join('\n'),
  );
  const proc = spawn('prosody', ['--config', config, '-F'], { stdio: ['ignore', 'ignore', 'inherit'] });
  await waitForPort(port, proc, 'prosody', logFile);
  const db = opts.archive ? join(data, 'prosody.sqlite') : undefined;
  return daemon('Prosody', proc, port, dir, dpkgVersion('prosody') ?? '?', logFile, db);
}

/**
 * ejabberd started the way `ejabberdctl foreground` does, but by `erl` directly: ejabberdctl run as root
 * switches to the `ejabberd` system user (which could not write our temp dir) and names an Erlang node
 * (which starts epmd, a daemon that would outlive the bench). Without a node name, ejabberd runs fine for
 * c2s; the Mnesia spool, the log and the config are in the temp dir.
 * Archive (profile 2): `sql_type: sqlite` (Debian's erlang-p1-sqlite3) on `ejabberd.db` in the temp dir,
 * `default_db: sql` (accounts, rosters and the archive all in SQLite), and mod_mam with `default: always`.
 * ejabberd 23.01 creates the schema itself from its lite.sql when the file has no tables.
 */
export async function startEjabberd(opts: PeerOptions = {}): Promise<Daemon> {
  const dir = await mkdtemp(join(tmpdir(), 'pmb-compare-ejabberd-'));
  const port = await freePort();
  const spool = join(dir, 'spool');
  mkdirSync(spool);
  const logFile = join(dir, 'ejabberd.log');
  const config = join(dir, 'ejabberd.yml');
  const db = opts.archive ? join(dir, 'ejabberd.db') : undefined;
  writeFileSync(
    config,
    [
      'hosts:',
      `  - ${XMPP_DOMAIN}`,
      'loglevel: warning',
      'log_rotate_count: 0',
      'certfiles: []',
      'listen:',
      `  - port: ${port}`,
      '    ip: "127.0.0.1"',
      '    module: ejabberd_c2s',
      '    starttls_required: false',
      // ejabberd's listen backlog defaults to 5; Prosody's and Node's are 128 and 511.
      '    backlog: 1024',
      'acl: {}',
      'access_rules:',
      '  register:',
      '    allow: all',
      // The bench registers 100+ accounts from 127.0.0.1: one per 600 s per address by default.
      'registration_timeout: infinity',
      `auth_method: ${db ? 'sql' : 'internal'}`,
      ...(db ? ['sql_type: sqlite', `sql_database: "${db}"`, 'default_db: sql'] : []),
      'modules:',
      '  mod_register:',
      '    ip_access: all',
      '    access: register',
      '  mod_roster: {}',
      '  mod_disco: {}',
      '  mod_ping: {}',
      ...(db ? ['  mod_mam:', '    db_type: sql', '    default: always'] : []),
      '',
    ].join('\n'),
  );
  const proc = spawn('erl', ['-noinput', '-noshell', '-mnesia', 'dir', `"${spool}"`, '-s', 'ejabberd'], {
    cwd: dir,
    stdio: ['ignore', 'ignore', 'inherit'],
    env: {
      ...process.env,
      ERL_LIBS: EJABBERD_LIBS,
      EJABBERD_CONFIG_PATH: config,
      EJABBERD_LOG_PATH: logFile,
      ERL_CRASH_DUMP: join(dir, 'erl_crash.dump'),
    },
  });
  await waitForPort(port, proc, 'ejabberd', logFile);
  return daemon('ejabberd', proc, port, dir, dpkgVersion('ejabberd') ?? '?', logFile, db);
}

/**
 * Profile 2's proof that the archive stores: the rows in the server's SQLite archive, read with the `sqlite3`
 * CLI (a plain reader beside the running server). Prosody 0.12 keeps archives in `prosodyarchive` (store
 * `archive`), ejabberd in `archive`. Both archive each chat message twice: once for the sender, once for
 * the recipient. Undefined when there is no archive or the CLI is missing.
 */
export function archivedRows(d: Daemon): number | undefined {
  if (!d.archiveDb || !onPath('sqlite3')) return undefined;
  const sql =
    d.name === 'Prosody'
      ? "SELECT COUNT(*) FROM prosodyarchive WHERE store = 'archive';"
      : 'SELECT COUNT(*) FROM archive;';
  // The server may be mid-commit: wait for its lock rather than fail with "database is locked".
  const r = spawnSync('sqlite3', ['-readonly', '-cmd', '.timeout 30000', d.archiveDb, sql], {
    encoding: 'utf8',
  });
  const n = Number(r.stdout.trim());
  return r.status === 0 && r.stdout.trim() !== '' && Number.isFinite(n) ? n : undefined;
}

/** The archive file's persistent journal mode (`delete` unless a server switched it to WAL). */
export function archiveJournalMode(d: Daemon): string | undefined {
  if (!d.archiveDb || !onPath('sqlite3')) return undefined;
  const r = spawnSync(
    'sqlite3',
    ['-readonly', '-cmd', '.timeout 30000', d.archiveDb, 'PRAGMA journal_mode;'],
    {
      encoding: 'utf8',
    },
  );
  return r.status === 0 ? r.stdout.trim() : undefined;
}
