// Makes a signed PMB release directory from the built single binaries (npm run build:binary):
//
//   npm run release -- --key /path/to/pmb-release-secret.asc --version 0.2.0 [--from dist/] [--out DIR]
//                      [--notes TEXT | --notes-file FILE] [--passphrase-file FILE]
//
// Writes DIR (default dist/release-<version>/): pmb-linux-x64 and/or pmb-linux-arm64, manifest.json (version,
// date, SHA-256 and size of each binary, notes), manifest.json.sig (armored detached signature by the release
// key) and SHA256SUMS (for install.sh). Publish DIR as is; `pmb upgrade --source <its URL>` installs it.
// The key must be the release key built into pmb (src/appliance/release-key.ts): a release signed by any
// other key would be refused by every installed pmb. See docs/releases.md.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { makeRelease } from '../src/appliance/release.js';
import { RELEASE_KEY_FINGERPRINT, RELEASE_PUBLIC_KEY } from '../src/appliance/release-key.js';
import {
  currentPlatform,
  MANIFEST_FILE,
  releaseKeys,
  SIGNATURE_FILE,
  verifyManifest,
} from '../src/appliance/release-manifest.js';
import { unlockIdentity } from '../src/crypto/index.js';

function fail(message: string): never {
  process.stderr.write(`release: ${message}\n`);
  process.exit(1);
}

const root = resolve(new URL('..', import.meta.url).pathname);
const { values } = parseArgs({
  options: {
    key: { type: 'string' },
    version: { type: 'string' },
    from: { type: 'string' },
    out: { type: 'string' },
    notes: { type: 'string' },
    'notes-file': { type: 'string' },
    'passphrase-file': { type: 'string' },
  },
});
if (!values.key || !values.version) {
  fail(
    'usage: npm run release -- --key SECRET_KEY_FILE --version X [--from dist/] [--out DIR] [--notes TEXT]',
  );
}
const version = values.version;
const pkgVersion = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string })
  .version;
if (pkgVersion !== version) {
  // The binaries report package.json's version; pmb upgrade waits for /health to report the manifest's.
  fail(
    `package.json says ${pkgVersion}, not ${version}: set the version (npm version ${version}), rebuild, release`,
  );
}
const from = resolve(values.from ?? join(root, 'dist'));
const out = resolve(values.out ?? join(root, 'dist', `release-${version}`));

const passphrase = values['passphrase-file']
  ? (readFileSync(values['passphrase-file'], 'utf8').split(/\r?\n/)[0] ?? '')
  : process.env.PMB_PASSPHRASE;
let key: Awaited<ReturnType<typeof unlockIdentity>>;
try {
  key = await unlockIdentity(readFileSync(values.key, 'utf8'), passphrase);
} catch (err) {
  fail(`${values.key}: ${(err as Error).message}`);
}
if (key.fingerprint !== RELEASE_KEY_FINGERPRINT) {
  fail(
    `${values.key} is key ${key.fingerprint}, not the release key ${RELEASE_KEY_FINGERPRINT} built into pmb: ` +
      'installed pmb would refuse this release',
  );
}

// The binary for this machine, if built, must say it is `version`, or the upgrade's health check would fail.
const host = currentPlatform();
if (host) {
  const r = spawnSync(join(from, `pmb-${host}`), ['--version'], { encoding: 'utf8' });
  if (r.status === 0 && r.stdout.trim() !== version) {
    fail(`${join(from, `pmb-${host}`)} says it is ${r.stdout.trim()}, not ${version}: rebuild it`);
  }
}

let release: Awaited<ReturnType<typeof makeRelease>>;
try {
  release = await makeRelease({
    key,
    version,
    from,
    out,
    ...(values.notes ? { notes: values.notes } : {}),
    ...(values['notes-file'] ? { notes: readFileSync(values['notes-file'], 'utf8').trim() } : {}),
  });
} catch (err) {
  fail((err as Error).message);
}
// Check it the way every installed pmb will.
await verifyManifest(
  readFileSync(join(out, MANIFEST_FILE)),
  readFileSync(join(out, SIGNATURE_FILE), 'utf8'),
  await releaseKeys([RELEASE_PUBLIC_KEY]),
);
process.stdout.write(
  `Release ${version} in ${release.dir}: ${release.files.join(', ')}\n` +
    `Signed by ${key.fingerprint}. Publish the directory; then: pmb upgrade --source <its https:// URL>\n`,
);
