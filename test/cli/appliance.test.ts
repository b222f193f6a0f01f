import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, it } from 'node:test';
import { connectUser, tempDir } from '../helpers/servers.js';
import { isolatedEnv, PMB_BIN, runPmb } from './pmb.js';

interface Check {
  name: string;
  status: 'ok' | 'warn' | 'fail' | 'skip';
  message: string;
  advice?: string;
}

function doctorReport(stdout: string): { ok: boolean; checks: Check[] } {
  return JSON.parse(stdout) as { ok: boolean; checks: Check[] };
}

describe('pmb init, config show, doctor', () => {
  it('pmb init --yes sets up a stopped data dir without asking; config show tells where values come from', async () => {
    await using home = await tempDir('pmb-cli-');
    const dataDir = join(home.path, 'data');
    const init = await runPmb(
      [
        'init',
        '--data-dir',
        dataDir,
        '--domain',
        'home.test',
        '--admin',
        'alice',
        '--registration',
        'invite',
        '--yes',
        '--json',
      ],
      home.path,
    );
    assert.equal(init.code, 0, init.stderr);
    const out = JSON.parse(init.stdout) as {
      domain: string;
      admin: string;
      running: boolean;
      configFile: string;
      register: string;
      invite: { code: string };
    };
    assert.equal(out.domain, 'home.test');
    assert.equal(out.admin, 'alice');
    assert.equal(out.running, false);
    assert.equal(out.configFile, join(dataDir, 'pmb.toml'));
    assert.equal(
      out.register,
      `pmb register alice@home.test --server ws://127.0.0.1:8447 --invite ${out.invite.code}`,
    );
    assert.match(await readFile(join(dataDir, 'pmb.toml'), 'utf8'), /^domain = "home.test"$/m);

    const again = await runPmb(['init', '--data-dir', dataDir, '--admin', 'bob', '--yes'], home.path);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /is already set up \(domain home\.test\): make invites with pmb invite/);

    // Effective configuration: the data dir's file, then PMB_* and flags on top.
    const main = join(home.path, 'pmb.toml');
    await writeFile(main, 'host = "0.0.0.0"\nport = 9000\n[limits]\nmax_depth = 8\n');
    const show = await runPmb(
      ['config', 'show', '--data-dir', dataDir, '--port', '9100', '--json'],
      home.path,
      {
        env: { PMB_CONFIG: main, PMB_REGISTRATION: 'open' },
      },
    );
    assert.equal(show.code, 0, show.stderr);
    const shown = JSON.parse(show.stdout) as {
      files: string[];
      settings: Record<string, { value: unknown; source: string; from: string }>;
    };
    assert.deepEqual(shown.files, [main, join(dataDir, 'pmb.toml')]);
    assert.deepEqual(shown.settings.domain, {
      value: 'home.test',
      source: 'file',
      from: join(dataDir, 'pmb.toml'),
    });
    assert.deepEqual(shown.settings.host, { value: '0.0.0.0', source: 'file', from: main });
    assert.deepEqual(shown.settings.port, { value: 9100, source: 'flag', from: '--port' });
    assert.deepEqual(shown.settings.registration, { value: 'open', source: 'env', from: 'PMB_REGISTRATION' });
    assert.deepEqual(shown.settings['limits.max_depth'], { value: 8, source: 'file', from: main });
    assert.deepEqual(shown.settings.log_level, { value: 'info', source: 'default', from: 'built-in' });
    assert.deepEqual(shown.settings['tls.cert'], { value: null, source: 'default', from: 'built-in' });

    const human = await runPmb(['config', 'show', '--data-dir', dataDir], home.path);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /^domain +home\.test +file .*pmb\.toml$/m);
    assert.match(human.stdout, /^port +8447 +default \(built-in\)$/m);

    await writeFile(main, 'prot = 1\n');
    const bad = await runPmb(['config', 'show', '--data-dir', dataDir], home.path, {
      env: { PMB_CONFIG: main },
    });
    assert.equal(bad.code, 2);
    assert.equal(bad.stderr.trim(), `pmb: ${main}: unknown key "prot" (did you mean "port"?)`);
  });

  it('config show takes --resolve repeated, and names the flag of a bad one', async () => {
    await using home = await tempDir('pmb-cli-');
    const dataDir = join(home.path, 'data');
    const args = ['config', 'show', '--data-dir', dataDir, '--json'];
    const shown = await runPmb(
      [...args, '--resolve', 'b.test=127.0.0.1:8448', '--resolve', 'c.test=https://[::1]:8449'],
      home.path,
    );
    assert.equal(shown.code, 0, shown.stderr);
    const { settings } = JSON.parse(shown.stdout) as {
      settings: Record<string, { value: unknown; from: string }>;
    };
    assert.deepEqual(settings.resolve, {
      value: { 'b.test': '127.0.0.1:8448', 'c.test': 'https://[::1]:8449' },
      source: 'flag',
      from: '--resolve',
    });
    const bad = await runPmb([...args, '--resolve', 'b.test=127.0.0.1'], home.path);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--resolve: \\?"127.0.0.1\\?" has no port/);
  });

  it('pmb init without a terminal names the missing or bad answer', async () => {
    await using home = await tempDir('pmb-cli-');
    const dataDir = join(home.path, 'data');
    const missing = await runPmb(['init', '--data-dir', dataDir, '--domain', 'x.test'], home.path);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /^pmb: --admin is required \(not run in a terminal/);
    const noDefault = await runPmb(['init', '--data-dir', dataDir, '--yes'], home.path);
    assert.equal(noDefault.code, 2);
    assert.match(noDefault.stderr, /^pmb: --admin is required \(it has no default\)/);
    const bad = await runPmb(['init', '--data-dir', dataDir, '--admin', 'al ice', '--yes'], home.path);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^pmb: --admin: "al ice" is not a nickname/);
    const policy = await runPmb(
      ['init', '--data-dir', dataDir, '--admin', 'alice', '--registration', 'sometimes', '--yes'],
      home.path,
    );
    assert.equal(policy.code, 2);
    assert.match(policy.stderr, /^pmb: --registration: "sometimes" is not one of open, invite, closed/);
  });

  it('pmb doctor: a running server is all ok, first run through pmb init; a stopped one is not', async () => {
    await using home = await tempDir('pmb-cli-');
    const dataDir = join(home.path, 'data');
    const child = spawn(
      process.execPath,
      [PMB_BIN, 'serve', '--port', '0', '--data-dir', dataDir, '--json'],
      {
        env: isolatedEnv(home.path, { PMB_LOG_LEVEL: 'warn' }),
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      const first = await Promise.race([
        new Promise<string>((resolve) => createInterface({ input: child.stdout }).once('line', resolve)),
        exited.then((code) => {
          throw new Error(`pmb serve exited ${code}: ${stderr}`);
        }),
      ]);
      const info = JSON.parse(first) as { url: string; setup?: { token: string; urls: string[] } };
      assert.ok(info.setup, 'the first start prints setup details');
      const port = new URL(info.url).port;
      assert.deepEqual(info.setup.urls, [`http://127.0.0.1:${port}/setup`]);

      const health = (await (await fetch(`http://127.0.0.1:${port}/health`)).json()) as { version: string };
      assert.match(health.version, /^\d+\.\d+\.\d+/, 'pmb serve reports its version');

      const token = await runPmb(['init', '--show-token', '--data-dir', dataDir], home.path);
      assert.equal(token.stdout.trim(), info.setup.token);

      const running = await runPmb(['doctor', '--data-dir', dataDir, '--json'], home.path);
      const report = doctorReport(running.stdout);
      assert.equal(running.code, 0, running.stdout + running.stderr);
      assert.equal(report.ok, true);
      const byName = Object.fromEntries(report.checks.map((c) => [c.name, c]));
      for (const name of ['config', 'server', 'port', 'clock', 'database', 'tls']) {
        assert.equal(byName[name]?.status, 'ok', `${name}: ${JSON.stringify(byName[name])}`);
      }
      assert.match(byName.server!.message, new RegExp(`running at ws://127.0.0.1:${port}`));
      assert.equal(byName.database!.message, 'integrity check passed');
      assert.equal(byName.setup?.status, 'warn', 'setup is still pending');
      assert.deepEqual(
        report.checks.filter((c) => c.status === 'skip').map((c) => c.name),
        ['upnp', 'onion'],
      );

      // pmb init finishes setup through the running server.
      const init = await runPmb(
        ['init', '--data-dir', dataDir, '--domain', 'live.test', '--admin', 'alice', '--yes', '--json'],
        home.path,
      );
      assert.equal(init.code, 0, init.stderr);
      const out = JSON.parse(init.stdout) as { running: boolean; invite: { code: string }; server: string };
      assert.equal(out.running, true);
      assert.equal(out.server, info.url);
      const alice = await connectUser(info, 'alice', { invite: out.invite.code });
      assert.equal(alice.server.domain, 'live.test');
      alice.close();
      const after = doctorReport(
        (await runPmb(['doctor', '--data-dir', dataDir, '--json'], home.path)).stdout,
      );
      assert.equal(after.checks.find((c) => c.name === 'setup')?.status, 'ok');

      child.kill('SIGTERM');
      assert.equal(await exited, 0, stderr);

      const stopped = await runPmb(['doctor', '--data-dir', dataDir], home.path);
      assert.equal(stopped.code, 1);
      assert.match(stopped.stdout, /^FAIL {2}server +not running \(no server\.json in .*\)$/m);
      assert.match(stopped.stdout, /-> start it: pmb serve --data-dir /);
      assert.match(
        stopped.stdout,
        /^ok {4}database +integrity check passed$/m,
        'checked read-only from the file',
      );
      const json = doctorReport(
        (await runPmb(['doctor', '--data-dir', dataDir, '--json'], home.path)).stdout,
      );
      assert.equal(json.ok, false);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
