import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { createServer as createNetServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createBackup } from '../../src/appliance/backup.js';
import { makeRelease } from '../../src/appliance/release.js';
import { currentPlatform, type Platform } from '../../src/appliance/release-manifest.js';
import type { ApplianceError } from '../../src/appliance/task-error.js';
import { checkForUpgrade, parseSource, upgrade, waitForHealth } from '../../src/appliance/upgrade.js';
import { type Identity, type PublicIdentity, readPublicIdentity } from '../../src/crypto/index.js';
import { runPmb } from '../cli/pmb.js';
import { connectUser, newIdentity, tempDir } from '../helpers/servers.js';

const PAYLOAD = fileURLToPath(new URL('./release-payload.js', import.meta.url));
const platform: Platform = currentPlatform() ?? 'linux-x64';

/**
 * A release "binary" for these tests: a real executable (a shell script) that runs the real PMB server
 * and says it is `version`, as a release binary knows its own version. A broken release exits at once.
 */
function releaseScript(version: string | 'broken'): string {
  if (version === 'broken') return '#!/bin/sh\necho "pmb: cannot start" >&2\nexit 1\n';
  return `#!/bin/sh\nexec "${process.execPath}" "${PAYLOAD}" --version ${version} "$@"\n`;
}

async function freePort(): Promise<number> {
  const srv = createNetServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as { port: number };
  await new Promise((r) => srv.close(r));
  return port;
}

/** A box: bin/pmb (version 0.1.0) serving data/ on a fixed port, and a "service manager" for it. */
async function box(root: string) {
  const bin = join(root, 'bin');
  await mkdir(bin);
  const target = join(bin, 'pmb');
  await writeFile(target, releaseScript('0.1.0'), { mode: 0o755 });
  const dataDir = join(root, 'data');
  const port = await freePort();
  const healthUrl = `http://127.0.0.1:${port}`;
  let child: ChildProcess | undefined;
  let starts = 0;
  const stop = async () => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = once(c, 'exit');
    c.kill('SIGTERM');
    await exited;
  };
  // What systemd does on `systemctl restart pmb`: stop the process, start whatever binary is there now.
  const restart = async () => {
    await stop();
    starts++;
    child = spawn(target, ['--data-dir', dataDir, '--port', String(port)], { stdio: 'ignore' });
    child.once('error', () => {});
  };
  await restart();
  assert.equal(await waitForHealth(healthUrl, '0.1.0', 15_000), undefined, 'the old version starts');
  return {
    target,
    dataDir,
    healthUrl,
    restart,
    stop,
    starts: () => starts,
    url: `ws://127.0.0.1:${port}`,
    backup: async () => (await createBackup({ dataDir, pmbVersion: '0.1.0' })).path,
  };
}

/** A signed release directory made by the real release code from binaries in a scratch dir. */
async function release(
  root: string,
  name: string,
  version: string,
  key: Identity,
  payload = releaseScript(version),
): Promise<string> {
  const from = join(root, `${name}-build`);
  await mkdir(from);
  for (const p of ['linux-x64', 'linux-arm64'])
    await writeFile(join(from, `pmb-${p}`), payload, { mode: 0o755 });
  const out = join(root, name);
  await makeRelease({ key, version, from, out, notes: `Release ${version}` });
  return out;
}

describe('pmb upgrade', () => {
  let releaseKey: Identity;
  let trusted: PublicIdentity[];
  let otherKey: Identity;
  before(async () => {
    releaseKey = await newIdentity();
    otherKey = await newIdentity();
    trusted = [await readPublicIdentity(releaseKey.publicKeyBytes)];
  });
  const cleanup: (() => Promise<void>)[] = [];
  after(async () => {
    for (const c of cleanup) await c();
  });

  it('a good release: verified, backed up, swapped, restarted and healthy on the new version', async () => {
    await using dir = await tempDir('pmb-upgrade-');
    const b = await box(dir.path);
    cleanup.push(b.stop);
    const alice = await connectUser({ url: b.url }, 'alice');
    alice.close();
    const good = await release(dir.path, 'rel-0.2.0', '0.2.0', releaseKey);
    const source = parseSource(good);

    const check = await checkForUpgrade({ source, trustedKeys: trusted, currentVersion: '0.1.0', platform });
    assert.deepEqual([check.current, check.available, check.newer], ['0.1.0', '0.2.0', true]);

    const steps: string[] = [];
    const progress: number[] = [];
    const r = await upgrade({
      source,
      trustedKeys: trusted,
      currentVersion: '0.1.0',
      platform,
      target: b.target,
      backup: b.backup,
      restart: b.restart,
      healthUrl: b.healthUrl,
      healthTimeoutMs: 15_000,
      onStep: (s) => steps.push(s),
      onProgress: (done) => progress.push(done),
    });
    assert.equal(r.status, 'upgraded');
    assert.ok(r.status === 'upgraded' && r.restarted && r.backup);
    assert.equal(await waitForHealth(b.healthUrl, '0.2.0', 1000), undefined, 'the new version serves');
    assert.equal(await readFile(b.target, 'utf8'), releaseScript('0.2.0'));
    assert.equal(await readFile(`${b.target}.previous`, 'utf8'), releaseScript('0.1.0'));
    assert.equal((await stat(b.target)).mode & 0o777, 0o755);
    assert.deepEqual(
      (await readdir(join(dir.path, 'bin'))).sort(),
      ['pmb', 'pmb.previous'],
      'no temp files left',
    );
    assert.ok(r.status === 'upgraded' && (await stat(r.backup!)).isFile(), 'a backup was taken first');
    assert.equal(progress.at(-1), (await stat(b.target)).size);
    assert.ok(steps.some((s) => /Backing up/.test(s)));

    // Same data after the upgrade: alice logs in.
    const again = await connectUser({ url: b.url }, 'alice', { identity: alice.identity, register: false });
    again.close();

    // Serving the old release again (a replay) does not downgrade.
    const old = await release(dir.path, 'rel-0.1.0', '0.1.0', releaseKey);
    const replay = await upgrade({
      source: parseSource(old),
      trustedKeys: trusted,
      currentVersion: '0.2.0',
      platform,
      target: b.target,
      restart: b.restart,
    });
    assert.equal(replay.status, 'up-to-date');
    assert.equal(await readFile(b.target, 'utf8'), releaseScript('0.2.0'));
    await b.stop();
  });

  it('a tampered release is refused before anything changes (signature, key, hash)', async () => {
    await using dir = await tempDir('pmb-upgrade-');
    const b = await box(dir.path);
    cleanup.push(b.stop);
    const attempt = (source: string) =>
      upgrade({
        source: parseSource(source),
        trustedKeys: trusted,
        currentVersion: '0.1.0',
        platform,
        target: b.target,
        backup: b.backup,
        restart: b.restart,
        healthUrl: b.healthUrl,
        healthTimeoutMs: 5000,
      });
    const untouched = async () => {
      assert.equal(await readFile(b.target, 'utf8'), releaseScript('0.1.0'));
      assert.deepEqual(await readdir(join(dir.path, 'bin')), ['pmb'], 'no pmb.previous, no temp files');
      assert.equal(b.starts(), 1, 'never restarted');
      assert.equal(await waitForHealth(b.healthUrl, '0.1.0', 1000), undefined);
    };

    // The manifest was edited after signing (pointing at a different binary).
    const edited = await release(dir.path, 'edited', '0.2.0', releaseKey);
    const manifest = JSON.parse(await readFile(join(edited, 'manifest.json'), 'utf8'));
    await writeFile(join(edited, 'evil'), '#!/bin/sh\necho pwned\n');
    const evil = await readFile(join(edited, 'evil'));
    const { createHash } = await import('node:crypto');
    manifest.binaries[platform] = {
      file: 'evil',
      sha256: createHash('sha256').update(evil).digest('hex'),
      size: evil.length,
    };
    await writeFile(join(edited, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
    await assert.rejects(attempt(edited), (e: ApplianceError) => {
      assert.equal(e.code, 'bad_signature');
      assert.match(e.message, /not signed by the PMB release key/);
      return true;
    });
    await untouched();

    // Signed, but by a key this program does not trust.
    const foreign = await release(dir.path, 'foreign', '0.2.0', otherKey);
    await assert.rejects(attempt(foreign), (e: ApplianceError) => e.code === 'bad_signature');
    await untouched();

    // No signature at all.
    const unsigned = await release(dir.path, 'unsigned', '0.2.0', releaseKey);
    await writeFile(join(unsigned, 'manifest.json.sig'), 'not a signature');
    await assert.rejects(attempt(unsigned), (e: ApplianceError) => e.code === 'bad_signature');
    await untouched();

    // A good signature, but the binary was swapped after signing: the hash gives it away.
    const swapped = await release(dir.path, 'swapped', '0.2.0', releaseKey);
    const name = `pmb-${platform}`;
    const original = await readFile(join(swapped, name), 'utf8');
    await writeFile(join(swapped, name), original.replace('0.2.0', '6.6.6'));
    await assert.rejects(attempt(swapped), (e: ApplianceError) => {
      assert.equal(e.code, 'bad_release');
      assert.match(e.message, /does not match the SHA-256 in the signed manifest/);
      return true;
    });
    await untouched();

    // Same size check: a longer file is cut off as soon as it passes the signed size.
    await writeFile(join(swapped, name), `${original}# padding\n`);
    await assert.rejects(attempt(swapped), (e: ApplianceError) => /larger than/.test(e.message));
    await untouched();
    await b.stop();
  });

  it('a release that fails to start is rolled back: the previous binary serves again', async () => {
    await using dir = await tempDir('pmb-upgrade-');
    const b = await box(dir.path);
    cleanup.push(b.stop);
    const broken = await release(dir.path, 'rel-0.3.0', '0.3.0', releaseKey, releaseScript('broken'));
    const steps: string[] = [];
    await assert.rejects(
      upgrade({
        source: parseSource(broken),
        trustedKeys: trusted,
        currentVersion: '0.1.0',
        platform,
        target: b.target,
        backup: b.backup,
        restart: b.restart,
        healthUrl: b.healthUrl,
        healthTimeoutMs: 10_000, // also the wait for the old version after the rollback: slow under load
        onStep: (s) => steps.push(s),
      }),
      (e: ApplianceError) => {
        assert.equal(e.code, 'rolled_back');
        assert.match(
          e.message,
          /pmb 0\.3\.0 failed its health check .* pmb 0\.1\.0 was put back and is running again/,
        );
        assert.match(e.message, /The backup taken before the upgrade is .*pmb-backup-.*\.tar\.gz/);
        return true;
      },
    );
    assert.ok(steps.some((s) => /rolling back/.test(s)));
    assert.equal(await readFile(b.target, 'utf8'), releaseScript('0.1.0'), 'the previous binary is back');
    assert.equal((await stat(b.target)).mode & 0o777, 0o755);
    assert.equal(await readFile(`${b.target}.previous`, 'utf8'), releaseScript('0.1.0'));
    assert.equal(b.starts(), 3, 'started, restarted on 0.3.0, restarted on 0.1.0');
    assert.equal(await waitForHealth(b.healthUrl, '0.1.0', 5000), undefined, 'healthy on the old version');
    await b.stop();
  });

  it('the CLI trusts only the built-in release key and never replaces node itself', async () => {
    await using dir = await tempDir('pmb-upgrade-');
    const rel = await release(dir.path, 'rel', '99.0.0', releaseKey);
    const check = await runPmb(['upgrade', '--check', '--source', rel], dir.path);
    assert.equal(check.code, 1);
    assert.match(check.stderr, /not signed by the PMB release key/);
    const viaEnv = await runPmb(['upgrade', '--check', '--json'], dir.path, {
      env: { PMB_UPGRADE_SOURCE: rel },
    });
    assert.equal(viaEnv.code, 1);
    assert.equal(JSON.parse(viaEnv.stderr).error.code, 'bad_signature');

    const underNode = await runPmb(['upgrade', '--source', rel, '--yes'], dir.path);
    assert.equal(underNode.code, 1);
    assert.match(underNode.stderr, /running under node .* name the binary with --target FILE/);

    const none = await runPmb(['upgrade', '--check'], dir.path);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /No release source: pass --source/);
  });
});
