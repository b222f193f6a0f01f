// The single-file executables do what a person does first with a fresh box: start a server, register two
// people, send one a message, read it, stop the server. x64 runs natively; arm64 (Raspberry Pi OS) runs under
// qemu-user as a Cortex-A53. Both binaries must exist (`npm run build:binary`): a missing one fails.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PACKAGE_VERSION, type Sandbox, type Serving, sandbox, serve, type Target } from './binary.js';

// Under qemu everything, openpgp key generation above all, runs several times slower.
const TIMEOUT: Record<Target, number> = { 'linux-x64': 30_000, 'linux-arm64': 90_000 };

for (const target of ['linux-x64', 'linux-arm64'] as const) {
  test(`${target} binary: serve, register two people, send, read, stop`, async (t) => {
    const timeoutMs = TIMEOUT[target];
    await using box: Sandbox = await sandbox(target);
    const version = await box.ok(['--version'], { timeoutMs });
    assert.equal(version.stdout.trim(), PACKAGE_VERSION);
    t.diagnostic(`--version: ${version.ms.toFixed(0)} ms`);

    const server: Serving = await serve(
      box,
      ['--port', '0', '--data-dir', `${box.dir}/data`, '--registration', 'open', '--log-level', 'warn'],
      timeoutMs,
    );
    try {
      t.diagnostic(`serve ready: ${server.readyMs.toFixed(0)} ms`);
      const { url, domain } = server.info;
      assert.match(url, /^ws:\/\/127\.0\.0\.1:\d+$/);
      const health = await fetch(`${url.replace(/^ws/, 'http')}/health`);
      assert.equal(health.status, 200);
      assert.equal(((await health.json()) as { ok?: boolean }).ok, true);

      const p1 = `${box.dir}/alice`;
      const p2 = `${box.dir}/bob`;
      const began = performance.now();
      await box.ok(['register', `alice@${domain}`, '--server', url, '--profile', p1, '--json'], {
        timeoutMs,
      });
      await box.ok(['register', `bob@${domain}`, '--server', url, '--profile', p2, '--json'], { timeoutMs });
      const text = `hello from the ${target} binary`;
      const sent = await box.ok(['send', `bob@${domain}`, text, '--profile', p1, '--json'], { timeoutMs });
      assert.equal((JSON.parse(sent.stdout) as { duplicate?: boolean }).duplicate, false);
      const inbox = await box.ok(['inbox', '--profile', p2, '--json'], { timeoutMs });
      const messages = inbox.stdout
        .split('\n')
        .filter((l) => l.trim())
        .map((l) => JSON.parse(l) as { text?: string; fromAddress?: string });
      assert.deepEqual(
        messages.map((m) => [m.fromAddress, m.text]),
        [[`alice@${domain}`, text]],
      );
      t.diagnostic(`register x2, send, inbox: ${(performance.now() - began).toFixed(0)} ms`);
    } finally {
      const exit = await server.stop();
      assert.deepEqual(exit, { code: 0, signal: null }, `pmb serve on SIGTERM\n${server.stderr()}`);
    }
  });
}
