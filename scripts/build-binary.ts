// Builds the single-file `pmb` executables with Bun's compiler: dist/pmb-linux-x64 and dist/pmb-linux-arm64
// (Raspberry Pi OS 64-bit). Each holds the Bun runtime, the bundled server + CLI, and the native addons
// (libsql, cbor-extract) of its architecture, so it runs on a machine with no Node.js and no node_modules.
//
//   npm run build:binary                       both targets
//   npx bun scripts/build-binary.ts linux-arm64  one target
//
// Runs under the bun pinned in package.json (devDependencies). Builds offline apart from the npm registry:
// the other architecture's Bun runtime and addons come from their npm packages (`npm pack`), unpacked into
// node_modules/.cache/pmb-binary, never into node_modules itself.
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
} from 'node:fs';
import { join, relative, resolve } from 'node:path';

type Arch = 'x64' | 'arm64';
const TARGETS: Record<string, Arch> = { 'linux-x64': 'x64', 'linux-arm64': 'arm64' };

const root = resolve(import.meta.dir, '..');
const cacheDir = join(root, 'node_modules', '.cache', 'pmb-binary');

function packageJson(dir: string): {
  name: string;
  version: string;
  devDependencies?: Record<string, string>;
} {
  return JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
}

const pkg = packageJson(root);
const bunVersion = pkg.devDependencies?.bun;
if (bunVersion !== Bun.version) {
  throw new Error(
    `run with the pinned bun ${bunVersion} (npx bun scripts/build-binary.ts), not ${Bun.version}`,
  );
}
const libsqlVersion = packageJson(join(root, 'node_modules', 'libsql')).version;
const cborExtractVersion = packageJson(join(root, 'node_modules', 'cbor-extract')).version;

/**
 * The unpacked directory of an npm package at an exact version: the installed one when node_modules has it
 * (the host's own architecture), else `npm pack` from the registry into the cache (the other one).
 */
function packageDir(name: string, version: string): string {
  const installed = join(root, 'node_modules', name);
  if (existsSync(join(installed, 'package.json')) && packageJson(installed).version === version)
    return installed;
  const dir = join(cacheDir, `${name.replace('/', '+')}@${version}`);
  if (existsSync(join(dir, 'package', 'package.json'))) return join(dir, 'package');
  mkdirSync(cacheDir, { recursive: true });
  const tmp = mkdtempSync(join(cacheDir, '.fetch-'));
  try {
    run('npm', ['pack', `${name}@${version}`, '--silent', '--pack-destination', tmp]);
    const tarball = readdirSync(tmp).find((f) => f.endsWith('.tgz'));
    if (!tarball) throw new Error(`npm pack ${name}@${version} left no tarball`);
    run('tar', ['-xzf', join(tmp, tarball), '-C', tmp]);
    rmSync(join(tmp, tarball));
    rmSync(dir, { recursive: true, force: true });
    chmodSync(tmp, 0o755);
    renameSync(tmp, dir);
    console.log(`fetched ${name}@${version} into ${relative(root, dir)}`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return join(dir, 'package');
}

function run(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
  if (r.status !== 0)
    throw new Error(`${cmd} ${args.join(' ')} failed (${r.error?.message ?? `exit ${r.status}`})`);
}

function mustExist(path: string): string {
  if (!existsSync(path)) throw new Error(`missing ${relative(root, path)}`);
  return path;
}

interface Natives {
  bunRuntime: string;
  libsql: string;
  cborExtract: string;
}

export function natives(arch: Arch): Natives {
  const bunPkg = `@oven/bun-linux-${arch === 'arm64' ? 'aarch64' : 'x64'}`;
  return {
    // The host's own runtime is this bun (its npm package's postinstall moved the binary out of bin/).
    bunRuntime:
      arch === process.arch
        ? process.execPath
        : mustExist(join(packageDir(bunPkg, Bun.version), 'bin', 'bun')),
    libsql: mustExist(join(packageDir(`@libsql/linux-${arch}-gnu`, libsqlVersion), 'index.node')),
    cborExtract: mustExist(
      join(
        packageDir(`@cbor-extract/cbor-extract-linux-${arch}`, cborExtractVersion),
        'node.napi.glibc.node',
      ),
    ),
  };
}

/** Replaces `from` exactly once, or fails the build: a changed dependency must not slip through silently. */
function replaceOnce(text: string, from: string, to: string, where: string): string {
  const at = text.indexOf(from);
  if (at < 0 || text.indexOf(from, at + from.length) >= 0) {
    throw new Error(`${where}: expected exactly one ${from} (did the dependency change?)`);
  }
  return text.slice(0, at) + to + text.slice(at + from.length);
}

/**
 * Native addons are found at run time by computed paths (libsql: require(`@libsql/${target}`); cbor-extract:
 * node-gyp-build-optional-packages searching node_modules), which a bundler can neither follow nor embed.
 * This rewrites each to a literal require of the target architecture's .node file, which `bun build
 * --compile` embeds and loads from memory.
 */
export function nativeAddons(n: Natives): import('bun').BunPlugin {
  return {
    name: 'pmb-native-addons',
    setup(build) {
      build.onLoad({ filter: /[\\/]node_modules[\\/]libsql[\\/](index|promise)\.js$/ }, async (args) => {
        let text = await Bun.file(args.path).text();
        text = replaceOnce(
          text,
          // biome-ignore lint/suspicious/noTemplateCurlyInString: the literal source text of libsql
          'require(`@libsql/${target}`)',
          `require(${JSON.stringify(n.libsql)})`,
          args.path,
        );
        // Its developer switch loads an addon from the build machine's node_modules: not in an executable.
        text = replaceOnce(text, 'if (process.env.LIBSQL_JS_DEV) {', 'if (false) {', args.path);
        return { contents: text, loader: 'js' };
      });
      build.onLoad({ filter: /[\\/]node_modules[\\/]cbor-extract[\\/]index\.js$/ }, () => ({
        contents: `module.exports = require(${JSON.stringify(n.cborExtract)});`,
        loader: 'js',
      }));
    },
  };
}

/**
 * Hook for the admin panel: the static files under web-admin/ (everything but TypeScript sources, which
 * reach the bundle through their imports like any module, and node_modules) are embedded verbatim, paths
 * kept. In the executable they are then readable with node:fs at /$bunfs/root/<path> (for example
 * /$bunfs/root/web-admin/index.html) and listed in Bun.embeddedFiles (each Blob's name is that path); under
 * Node the server reads them from the checkout's web-admin/ instead.
 */
function adminAssets(): string[] {
  const files: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(join(root, dir))) {
      const path = `${dir}/${name}`;
      if (name === 'node_modules' || name.startsWith('.')) continue;
      if (statSync(join(root, path)).isDirectory()) walk(path);
      else if (!/\.(ts|tsx|mts|cts)$/.test(name)) files.push(path);
    }
  };
  if (existsSync(join(root, 'web-admin'))) walk('web-admin');
  return files;
}

async function buildTarget(target: string, arch: Arch): Promise<void> {
  const started = performance.now();
  const n = natives(arch);
  const outfile = join(root, 'dist', `pmb-${target}`);
  const assets = adminAssets();
  const result = await Bun.build({
    entrypoints: [join(root, 'scripts', 'binary-entry.ts')],
    compile: {
      assets,
      target: `bun-${target}`,
      outfile,
      executablePath: n.bunRuntime,
      // The executable is a server program: it must not pick up a .env or bunfig.toml from whatever
      // directory it is started in, nor the tsconfig/package.json there.
      autoloadDotenv: false,
      autoloadBunfig: false,
      autoloadTsconfig: false,
      autoloadPackageJson: false,
    },
    target: 'bun',
    format: 'esm',
    // Precompiled bytecode: about half the start-up time, for a somewhat larger file.
    bytecode: true,
    minify: true,
    sourcemap: 'none',
    define: { PMB_BUILD_VERSION: JSON.stringify(pkg.version) },
    plugins: [nativeAddons(n)],
    throw: false,
  } as Parameters<typeof Bun.build>[0]);
  if (!result.success) {
    for (const log of result.logs) console.error(log);
    throw new Error(`bun build failed for ${target}`);
  }
  for (const log of result.logs) console.warn(log);
  const mb = (statSync(outfile).size / 2 ** 20).toFixed(1);
  const s = ((performance.now() - started) / 1000).toFixed(1);
  const embedded = assets.length ? `, ${assets.length} web-admin files embedded` : '';
  console.log(`${relative(root, outfile)}: ${mb} MiB${embedded}, ${s} s`);
}

if (import.meta.main) {
  process.chdir(root); // embedded asset paths are relative to it
  const wanted = process.argv.slice(2);
  for (const t of wanted)
    if (!(t in TARGETS)) throw new Error(`unknown target ${t} (${Object.keys(TARGETS)})`);
  for (const [target, arch] of Object.entries(TARGETS)) {
    if (wanted.length === 0 || wanted.includes(target)) await buildTarget(target, arch);
  }
}
