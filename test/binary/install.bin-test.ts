// install.sh, run for real: shellcheck-clean; an unprivileged install under a prefix (--prefix --no-systemd)
// of the built binary for this machine, which then serves from the installed config; a second run that
// upgrades and keeps config and data; checksums (--sha256, and the release manifest of a --from-url
// download); --uninstall and --uninstall --purge; clear refusals. The systemd unit is checked with
// `systemd-analyze verify` (no running systemd needed). Needs bash, shellcheck, curl or wget, and
// systemd-analyze (package systemd): a missing one fails with the apt-get line.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import {
  appendFile,
  chmod,
  copyFile,
  mkdtemp,
  readdir,
  readFile,
  realpath,
  rm,
  stat,
  writeFile,
} from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { arch, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, it } from 'node:test';
import { PACKAGE_VERSION, ROOT } from './binary.js';

const SCRIPT = join(ROOT, 'install.sh');
const TARGET = arch() === 'arm64' ? 'linux-arm64' : 'linux-x64';
const BUILT = join(ROOT, 'dist', `pmb-${TARGET}`);
const ENV = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8' };

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** bash install.sh ARGS, with stdin closed (no terminal to ask on) and a clean environment. */
async function install(args: string[], timeoutMs = 120_000): Promise<Result> {
  const child = spawn('bash', [SCRIPT, ...args], {
    env: { ...ENV, HOME: tmpdir() },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true, // own session: /dev/tty cannot be opened, as under CI
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
  });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const [code] = (await once(child, 'close')) as [number | null];
  clearTimeout(timer);
  return { code, stdout, stderr };
}

async function ok(args: string[]): Promise<Result> {
  const r = await install(args);
  assert.equal(r.code, 0, `install.sh ${args.join(' ')} exited ${r.code}\n${r.stderr}${r.stdout}`);
  return r;
}

function need(tool: string, apt: string): void {
  if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) {
    throw new Error(`${tool} is missing: apt-get install ${apt} (as .ci/run does)`);
  }
}

function builtBinary(): string {
  if (!existsSync(BUILT)) throw new Error(`${BUILT} is missing: run \`npm run build:binary\` first`);
  return BUILT;
}

async function mode(path: string): Promise<number> {
  return (await stat(path)).mode & 0o777;
}

async function sha256(path: string): Promise<string> {
  return createHash('sha256')
    .update(await readFile(path))
    .digest('hex');
}

async function tempPrefix(): Promise<{ dir: string; [Symbol.asyncDispose](): Promise<void> }> {
  const dir = await realpath(await mkdtemp(join(tmpdir(), 'pmb-install-')));
  return { dir, [Symbol.asyncDispose]: () => rm(dir, { recursive: true, force: true }) };
}

/** Everything under dir, as paths relative to it. */
async function tree(dir: string): Promise<string[]> {
  return (await readdir(dir, { recursive: true })).map(String).sort();
}

/** `pmb serve ... --json` from the installed binary; resolves with its JSON line. */
async function serve(
  bin: string,
  args: string[],
): Promise<{ child: ChildProcess; info: Record<string, unknown>; stderr: () => string }> {
  const child = spawn(bin, ['serve', ...args, '--port', '0', '--json', '--log-level', 'warn'], {
    env: { ...ENV, HOME: tmpdir() },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    err += d;
  });
  const lines = createInterface({ input: child.stdout! });
  let timer: NodeJS.Timeout | undefined;
  try {
    const [line] = (await Promise.race([
      once(lines, 'line'),
      once(child, 'exit').then(([code]) => {
        throw new Error(`pmb serve exited ${code}\n${err}`);
      }),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`pmb serve not ready in 60 s\n${err}`)), 60_000);
      }),
    ])) as [string];
    return { child, info: JSON.parse(line) as Record<string, unknown>, stderr: () => err };
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  } finally {
    clearTimeout(timer);
  }
}

async function stop(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null)
    return { code: child.exitCode, signal: child.signalCode };
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), 30_000);
  const [code, signal] = await exited;
  clearTimeout(t);
  return { code, signal };
}

describe('install.sh', () => {
  it('passes shellcheck', () => {
    need('shellcheck', 'shellcheck');
    const r = spawnSync('shellcheck', [SCRIPT], { encoding: 'utf8' });
    assert.equal(r.status, 0, `shellcheck install.sh:\n${r.stdout}${r.stderr}`);
  });

  it('--help explains the options and changes nothing', async () => {
    const r = await ok(['--help']);
    for (const opt of [
      '--from',
      '--from-url',
      '--sha256',
      '--prefix',
      '--no-systemd',
      '--uninstall',
      '--purge',
      '--yes',
    ]) {
      assert.match(r.stdout, new RegExp(`${opt}\\b`));
    }
  });

  it('refuses unsupported architectures, naming what is supported', async () => {
    await using p = await tempPrefix();
    for (const [machine, why] of [
      ['armv7l', /32-bit ARM \(armv7l\) is not supported yet/],
      ['armv6l', /32-bit ARM \(armv6l\) is not supported yet/],
      ['mips64', /unsupported architecture 'mips64'/],
    ] as const) {
      const r = await install([
        '--prefix',
        p.dir,
        '--no-systemd',
        '--from',
        builtBinary(),
        '--arch',
        machine,
      ]);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, why);
      assert.match(r.stderr, /linux-x64 \(x86_64\) and linux-arm64 \(aarch64/);
    }
    assert.equal(existsSync(join(p.dir, 'usr/local/bin/pmb')), false);
  });

  it('refuses a missing --from file, a bad option and a bad --sha256 clearly', async () => {
    await using p = await tempPrefix();
    const missing = join(p.dir, 'no-such-pmb');
    let r = await install(['--prefix', p.dir, '--from', missing]);
    assert.equal(r.code, 1);
    assert.equal(r.stderr.trim(), `install.sh: error: --from ${missing}: no such file`);
    r = await install(['--prefix', p.dir, '--frm', missing]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /unknown option: --frm \(see --help\)/);
    r = await install(['--prefix', p.dir, '--from', builtBinary(), '--sha256', 'abc']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /--sha256: 'abc' is not a SHA-256/);
    r = await install(['--purge']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /--purge goes with --uninstall/);
    assert.equal(existsSync(join(p.dir, 'usr/local/bin/pmb')), false);
  });

  it('needs root unless --prefix is given', async () => {
    // As root, run it as nobody, from a copy nobody can read (a checkout may live in /root).
    await using p = await tempPrefix();
    const script = join(p.dir, 'install.sh');
    await copyFile(SCRIPT, script);
    await chmod(p.dir, 0o755);
    await chmod(script, 0o644);
    const asRoot = process.getuid?.() === 0;
    if (asRoot) need('setpriv', 'util-linux');
    const argv = ['bash', script, '--from', join(p.dir, 'pmb')];
    const [cmd, ...args] = asRoot
      ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', ...argv]
      : argv;
    const r = spawnSync(cmd!, args, { env: { ...ENV, HOME: tmpdir() }, encoding: 'utf8', cwd: p.dir });
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /needs root: run it with sudo .* or use --prefix DIR --no-systemd/);
  });

  it('installs under a prefix, serves from that config, upgrades in place, uninstalls, purges', async (t) => {
    const binary = builtBinary();
    await using p = await tempPrefix();
    const bin = join(p.dir, 'usr/local/bin/pmb');
    const config = join(p.dir, 'etc/pmb/pmb.toml');
    const data = join(p.dir, 'var/lib/pmb');

    // First install.
    const first = await ok(['--prefix', p.dir, '--no-systemd', '--from', binary]);
    assert.match(first.stdout, new RegExp(`Installed ${bin} ${PACKAGE_VERSION}`));
    assert.ok(first.stdout.includes(`${bin} serve --config ${config}`), first.stdout);
    assert.equal(await mode(bin), 0o755);
    assert.equal(await mode(config), 0o640);
    assert.equal(await mode(data), 0o750);
    assert.equal(await sha256(bin), await sha256(binary));
    const toml = await readFile(config, 'utf8');
    assert.match(toml, /^host = "0\.0\.0\.0"$/m);
    assert.match(toml, /^port = 8447$/m);
    assert.match(toml, /^registration = "invite"$/m);
    assert.ok(toml.includes(`\ndata_dir = "${data}"\n`), toml);
    assert.deepEqual(
      (await tree(p.dir)).filter((f) => !f.startsWith('var/lib/pmb/')),
      [
        'etc',
        'etc/pmb',
        'etc/pmb/pmb.toml',
        'usr',
        'usr/local',
        'usr/local/bin',
        'usr/local/bin/pmb',
        'var',
        'var/lib',
        'var/lib/pmb',
      ],
    );

    // The installed binary runs and serves from the installed config.
    const version = spawnSync(bin, ['--version'], { encoding: 'utf8', env: { ...ENV, HOME: tmpdir() } });
    assert.equal(version.status, 0, version.stderr);
    assert.equal(version.stdout.trim(), PACKAGE_VERSION);
    let server: Awaited<ReturnType<typeof serve>>;
    try {
      server = await serve(bin, ['--config', config]);
    } catch (e) {
      if (!/unknown option '--config'/.test(String(e))) throw e;
      t.diagnostic('this pmb has no --config yet: serving with --data-dir from the installed layout instead');
      server = await serve(bin, ['--data-dir', data, '--host', '127.0.0.1']);
    }
    try {
      assert.equal(server.info.dataDir, data);
      assert.equal(server.info.registration, 'invite');
      const port = new URL(String(server.info.url)).port;
      const health = await fetch(`http://127.0.0.1:${port}/health`);
      assert.equal(health.status, 200);
    } finally {
      assert.deepEqual(await stop(server.child), { code: 0, signal: null }, server.stderr());
    }
    const dataFiles = await tree(data);
    assert.ok(dataFiles.length > 0, 'pmb serve wrote its data dir');

    // Second run: an upgrade. The edited config is untouched, the data kept, nothing left behind.
    await appendFile(config, '# edited by the household\n');
    const editedConfig = await readFile(config, 'utf8');
    await writeFile(join(data, 'keep-me'), 'precious\n');
    const second = await ok(['--prefix', p.dir, '--no-systemd', '--from', binary]);
    assert.match(second.stdout, /Keeping the config .* \(never overwritten\)/);
    assert.match(second.stdout, new RegExp(`Upgraded ${bin}: ${PACKAGE_VERSION} -> ${PACKAGE_VERSION}`));
    assert.equal(await readFile(config, 'utf8'), editedConfig);
    assert.equal(await mode(config), 0o640);
    assert.equal(await readFile(join(data, 'keep-me'), 'utf8'), 'precious\n');
    for (const f of dataFiles) assert.ok(existsSync(join(data, f)), `kept ${f}`);
    assert.deepEqual(await readdir(join(p.dir, 'usr/local/bin')), ['pmb'], 'no temporary file left');

    // Checksums: a wrong --sha256 installs nothing, the right one installs.
    const wrong = await install(['--prefix', p.dir, '--from', binary, '--sha256', '0'.repeat(64)]);
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /SHA-256 mismatch: expected 0{64}, got [0-9a-f]{64}\. Not installed\./);
    assert.deepEqual(await readdir(join(p.dir, 'usr/local/bin')), ['pmb']);
    const right = await ok([
      '--prefix',
      p.dir,
      '--from',
      binary,
      '--sha256',
      (await sha256(binary)).toUpperCase(),
    ]);
    assert.match(right.stdout, /SHA-256 verified/);

    // The systemd unit for this layout is one systemd accepts.
    const unit = (await ok(['--prefix', p.dir, '--print-unit'])).stdout;
    await checkUnit(unit, p.dir, { bin, config, data });

    // --uninstall removes the binary, keeps data and config.
    const un = await ok(['--prefix', p.dir, '--uninstall']);
    assert.match(un.stdout, /Kept the data in .* and the config in .*--purge/);
    assert.equal(existsSync(bin), false);
    assert.equal(await readFile(config, 'utf8'), editedConfig);
    assert.equal(await readFile(join(data, 'keep-me'), 'utf8'), 'precious\n');

    // --purge asks first; with no terminal to ask on and no --yes, it removes nothing.
    const asked = await install(['--prefix', p.dir, '--uninstall', '--purge']);
    assert.equal(asked.code, 1);
    assert.match(asked.stderr, /permanently deletes the data in .*This cannot be undone/);
    assert.match(asked.stderr, /add --yes/);
    assert.ok(existsSync(join(data, 'keep-me')));

    // --purge --yes removes everything it made under the prefix.
    const purged = await ok(['--prefix', p.dir, '--uninstall', '--purge', '--yes']);
    assert.match(purged.stdout, /Purged pmb/);
    assert.deepEqual(await tree(p.dir), []);
  });

  it('downloads with --from-url and checks it against the release manifest', async () => {
    if (spawnSync('sh', ['-c', 'command -v curl || command -v wget']).status !== 0) {
      throw new Error('curl and wget are both missing: apt-get install curl (as .ci/run does)');
    }
    const binary = builtBinary();
    const name = `pmb-${TARGET}`;
    const body = await readFile(binary);
    let sums = `${await sha256(binary)}  ${name}\n`;
    const http = createServer((req, res) => {
      if (req.url === `/rel/${name}` || req.url === `/bare/${name}`) res.end(body);
      else if (req.url === '/rel/SHA256SUMS') res.end(sums);
      else res.writeHead(404).end();
    });
    http.listen(0, '127.0.0.1');
    await once(http, 'listening');
    const base = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
    await using p = await tempPrefix();
    try {
      // A release directory (trailing /): the name for this machine is appended, the manifest checked.
      const r = await ok(['--prefix', p.dir, '--from-url', `${base}/rel/`]);
      assert.match(r.stdout, new RegExp(`Downloading ${base}/rel/${name}`));
      assert.match(r.stdout, /SHA-256 verified/);
      assert.equal(await sha256(join(p.dir, 'usr/local/bin/pmb')), await sha256(binary));

      // A manifest that disagrees: refused, the installed binary untouched.
      sums = `${'1'.repeat(64)}  ${name}\n`;
      const bad = await install(['--prefix', p.dir, '--from-url', `${base}/rel/${name}`]);
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /SHA-256 mismatch/);
      assert.deepEqual(await readdir(join(p.dir, 'usr/local/bin')), ['pmb']);

      // A manifest without this file: refused. No manifest at all: installed, with a warning.
      sums = `${'1'.repeat(64)}  pmb-other\n`;
      const absent = await install(['--prefix', p.dir, '--from-url', `${base}/rel/${name}`]);
      assert.equal(absent.code, 1);
      assert.match(absent.stderr, /SHA256SUMS has no checksum for pmb-/);
      const noSums = await ok(['--prefix', p.dir, '--from-url', `${base}/bare/${name}`]);
      assert.match(
        noSums.stderr,
        /warning: no release manifest at .*\/bare\/SHA256SUMS: the download is not checked/,
      );
      const missing = await install(['--prefix', p.dir, '--from-url', `${base}/nowhere/${name}`]);
      assert.equal(missing.code, 1, 'a 404 for the binary itself fails');
      assert.match(missing.stderr, /could not download/);
    } finally {
      http.close();
    }
  });
});

/** The unit's must-haves, then `systemd-analyze verify` (works without a running systemd). */
async function checkUnit(unit: string, prefix: string, paths: { bin: string; config: string; data: string }) {
  const lines = unit.split('\n');
  for (const want of [
    'User=pmb',
    `ExecStart=${paths.bin} serve --config ${paths.config}`,
    `Environment=PMB_DATA_DIR=${paths.data}`,
    `ReadWritePaths=${paths.data}`,
    'Restart=on-failure',
    'NoNewPrivileges=yes',
    'ProtectSystem=strict',
    'ProtectHome=yes',
    'PrivateTmp=yes',
    'PrivateDevices=yes',
    'ProtectKernelTunables=yes',
    'ProtectKernelModules=yes',
    'ProtectControlGroups=yes',
    'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK',
    'RestrictNamespaces=yes',
    'LockPersonality=yes',
    'SystemCallArchitectures=native',
    'CapabilityBoundingSet=',
    'AmbientCapabilities=',
    'UMask=0077',
    'WantedBy=multi-user.target',
  ]) {
    assert.ok(lines.includes(want), `the unit has ${want}\n${unit}`);
  }
  // A JIT runtime needs writable+executable memory: this one must stay off (a comment says why).
  assert.ok(!lines.some((l) => l.startsWith('MemoryDenyWriteExecute')), unit);
  assert.match(unit, /^# MemoryDenyWriteExecute=yes is deliberately absent: [^\n]*\n# [^\n]*JIT compiler/m);

  need('systemd-analyze', 'systemd');
  const file = join(prefix, 'pmb.service');
  await writeFile(file, unit);
  try {
    const r = spawnSync('systemd-analyze', ['verify', file], {
      encoding: 'utf8',
      env: { ...ENV, SYSTEMD_LOG_COLOR: '0' },
    });
    // verify exits 0 on unknown keys but complains: any output is a finding.
    assert.equal(r.status, 0, `systemd-analyze verify:\n${r.stdout}${r.stderr}`);
    assert.equal(`${r.stdout}${r.stderr}`.trim(), '', 'systemd-analyze verify found something');
  } finally {
    await rm(file, { force: true });
  }
}
