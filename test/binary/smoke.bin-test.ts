// The single-file executables do what a person does first with a fresh box: start a server, register two
// people, send one a message, read it, stop the server. Each runs from an empty directory with only PATH and
// HOME. x64 runs natively, and again on an emulated x86-64 CPU without AVX (Nehalem: like the Atom/Celeron
// chips in many home boxes and NASes); arm64 runs under qemu-user as a Cortex-A53, the Raspberry Pi 3's core.
// Both binaries must exist (`npm run build:binary`) and qemu-user must be installed: anything missing fails.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { PACKAGE_VERSION, type Sandbox, type Serving, sandbox, serve, type Target } from './binary.js';

const MACHINES: { target: Target; cpu?: string; what: string }[] = [
  { target: 'linux-x64', what: 'natively' },
  { target: 'linux-x64', cpu: 'Nehalem', what: 'on an x86-64 CPU without AVX (qemu)' },
  { target: 'linux-arm64', cpu: 'cortex-a53', what: 'on a Raspberry Pi 3 CPU (qemu)' },
];

for (const { target, cpu, what } of MACHINES) {
  test(`${target} binary ${what}: serve, register two people, send, read, stop`, async (t) => {
    // Under qemu everything, openpgp key generation above all, runs several times slower.
    const timeoutMs = cpu ? 90_000 : 30_000;
    await using box: Sandbox = await sandbox(target, cpu);
    // A server program must not take settings from whatever directory it is started in: Bun would by
    // default read these two (.env into the environment, where PMB_DOMAIN is read), and either fails this test.
    await writeFile(join(box.dir, '.env'), 'PMB_DOMAIN=from-dotenv.example\n');
    await writeFile(join(box.dir, 'bunfig.toml'), 'preload = ["./missing-preload.ts"]\n');
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
      const { url, domain, registration } = server.info;
      assert.equal(registration, 'open');
      assert.notEqual(domain, 'from-dotenv.example', 'the binary read .env');
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
      const text = `hello from the ${target} binary ${what}`;
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
