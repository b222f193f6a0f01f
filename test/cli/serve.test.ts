import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { access, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, it } from 'node:test';
import { connectUser } from '../helpers/servers.js';
import { isolatedEnv, PMB_BIN, runPmb } from './pmb.js';

describe('pmb serve', () => {
  it('prints its URL, serves clients and admin tools, and exits 0 on SIGTERM', async () => {
    const home = await mkdtemp(join(tmpdir(), 'pmb-serve-'));
    const dataDir = join(home, 'data');
    const child = spawn(
      process.execPath,
      [PMB_BIN, 'serve', '--port', '0', '--data-dir', dataDir, '--registration', 'open', '--json'],
      {
        env: isolatedEnv(home, { PMB_DOMAIN: 'home.test', PMB_LOG_LEVEL: 'warn' }),
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      const lines = createInterface({ input: child.stdout });
      const first = await Promise.race([
        new Promise<string>((resolve) => lines.once('line', resolve)),
        exited.then((code) => {
          throw new Error(`pmb serve exited ${code}: ${stderr}`);
        }),
      ]);
      const info = JSON.parse(first) as { url: string; domain: string; fingerprint: string; dataDir: string };
      assert.match(info.url, /^ws:\/\/127\.0\.0\.1:\d+$/);
      assert.equal(info.domain, 'home.test');
      assert.match(info.fingerprint, /^[0-9a-f]{40}$/);
      assert.equal(info.dataDir, dataDir);

      const client = await connectUser(info, 'alice');
      assert.equal(client.server.domain, 'home.test');
      assert.equal(client.server.fingerprint, info.fingerprint);
      client.close();

      // Admin tools find the running server through the data dir.
      const invite = await runPmb(['invite', '--data-dir', dataDir, '--json'], home);
      assert.equal(invite.code, 0, invite.stderr);
      assert.match(JSON.parse(invite.stdout).code, /^[0-9a-f]+$/);

      child.kill('SIGTERM');
      assert.equal(await exited, 0, stderr);
      await assert.rejects(access(join(dataDir, 'server.json')), 'server.json is removed on exit');
      assert.equal((await readFile(join(dataDir, 'admin-token'), 'utf8')).trim().length, 48);
    } finally {
      child.kill('SIGKILL');
      await rm(home, { recursive: true, force: true });
    }
  });

  it('refuses bad settings with a usage error (exit 2) naming the setting', async () => {
    const home = await mkdtemp(join(tmpdir(), 'pmb-serve-'));
    try {
      const r = await runPmb(['serve', '--data-dir', join(home, 'd'), '--registration', 'sometimes'], home, {
        env: { PMB_PORT: '8447' },
      });
      assert.equal(r.code, 2);
      assert.equal(r.stderr.trim(), 'pmb: --registration: "sometimes" is not one of open, invite, closed');
      const p = await runPmb(['serve', '--data-dir', join(home, 'd')], home, { env: { PMB_PORT: 'http' } });
      assert.equal(p.code, 2);
      assert.match(p.stderr, /^pmb: PMB_PORT: "http" is not a port/);
    } finally {
      await rm(home, { recursive: true, force: true });
    }
  });
});
