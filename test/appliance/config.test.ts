import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { configEntries, defaultDomain, resolveConfig, toServerConfig } from '../../src/appliance/config.js';
import { updateDataDirConfig } from '../../src/appliance/config-file.js';
import { DEFAULT_LIMITS } from '../../src/protocol/limits.js';
import { clientAddress } from '../../src/server/client-address.js';
import { tempDir } from '../helpers/servers.js';

const NO_SYSTEM_FILE = '/nonexistent/pmb.toml';

describe('configuration', () => {
  it('takes defaults when nothing is set', () => {
    const r = resolveConfig({
      env: { HOME: '/home/u', XDG_DATA_HOME: '/xdg/data' },
      hostname: 'Pi-Box.fritz.box',
      systemFile: NO_SYSTEM_FILE,
    });
    assert.deepEqual(r.config, {
      dataDir: '/xdg/data/pmb',
      domain: 'pi-box.local',
      host: '127.0.0.1',
      port: 8447,
      registration: 'invite',
      logLevel: 'info',
      publicUrl: undefined,
      tls: undefined,
      acme: undefined,
      trustProxy: false,
      resolve: {},
      peers: [],
      limits: DEFAULT_LIMITS,
    });
    assert.deepEqual(r.files, []);
    assert.deepEqual(r.origins.domain, { source: 'default', from: 'hostname' });
  });

  it('layers defaults <- file <- data dir file <- environment <- flags', async () => {
    await using dir = await tempDir();
    const dataDir = join(dir.path, 'data');
    const main = join(dir.path, 'pmb.toml');
    await writeFile(
      main,
      [
        `data_dir = "data"`, // relative to the file's folder
        `domain = "file.example"`,
        `host = "0.0.0.0"`,
        `port = 9000`,
        `registration = "open"`,
        `log_level = "warn"`,
        `public_url = "https://pmb.file.example"`,
        `trust_proxy = true`,
        `[tls]`,
        `cert = "certs/fullchain.pem"`,
        `key = "/etc/ssl/key.pem"`,
        `[limits]`,
        `max_frame_bytes = 1000`,
        `connections_per_address = 4`,
      ].join('\n'),
    );
    const f = resolveConfig({ flags: { config: main }, env: {}, systemFile: NO_SYSTEM_FILE });
    assert.equal(f.config.dataDir, dataDir);
    assert.equal(f.config.domain, 'file.example');
    assert.equal(f.config.host, '0.0.0.0');
    assert.equal(f.config.port, 9000);
    assert.equal(f.config.registration, 'open');
    assert.equal(f.config.logLevel, 'warn');
    assert.equal(f.config.publicUrl, 'wss://pmb.file.example');
    assert.equal(f.config.trustProxy, true);
    assert.deepEqual(f.config.tls, { cert: join(dir.path, 'certs/fullchain.pem'), key: '/etc/ssl/key.pem' });
    assert.equal(f.config.limits.maxFrameBytes, 1000);
    assert.equal(f.config.limits.connectionsPerAddress, 4);
    assert.equal(f.config.limits.maxDepth, DEFAULT_LIMITS.maxDepth);
    assert.deepEqual(f.origins.port, { source: 'file', from: main });
    assert.deepEqual(f.origins['limits.max_depth'], { source: 'default', from: 'built-in' });

    // The data dir's own file (written by setup) wins over the main file.
    await mkdir(dataDir);
    await updateDataDirConfig(dataDir, { domain: 'setup.example' });
    const own = join(dataDir, 'pmb.toml');
    const d = resolveConfig({ env: { PMB_CONFIG: main }, systemFile: NO_SYSTEM_FILE });
    assert.deepEqual(d.files, [main, own]);
    assert.equal(d.config.domain, 'setup.example');
    assert.deepEqual(d.origins.domain, { source: 'file', from: own });
    assert.equal(d.config.port, 9000, 'keys the data dir file lacks still come from the main file');

    // The system file is used when neither --config nor PMB_CONFIG names one.
    const s = resolveConfig({ env: {}, systemFile: main });
    assert.equal(s.config.domain, 'setup.example');

    const env = { PMB_CONFIG: main, PMB_PORT: '9100', PMB_DOMAIN: 'Env.Example', PMB_LIMITS_MAX_DEPTH: '8' };
    const e = resolveConfig({ env, systemFile: NO_SYSTEM_FILE });
    assert.deepEqual([e.config.port, e.config.domain, e.config.limits.maxDepth], [9100, 'env.example', 8]);
    assert.deepEqual(e.origins.port, { source: 'env', from: 'PMB_PORT' });

    const fl = resolveConfig({
      flags: { port: '0', domain: 'flag.example', tlsCert: 'a.pem', tlsKey: 'b.pem' },
      env,
      systemFile: NO_SYSTEM_FILE,
    });
    assert.deepEqual([fl.config.port, fl.config.domain], [0, 'flag.example']);
    assert.deepEqual(fl.origins.port, { source: 'flag', from: '--port' });
    assert.deepEqual(fl.origins['tls.cert'], { source: 'flag', from: '--tls-cert' });
    assert.equal(fl.config.tls?.cert, join(process.cwd(), 'a.pem'));

    const shown = Object.fromEntries(configEntries(fl).map((x) => [x.key, x]));
    assert.equal(shown.port?.value, 0);
    assert.equal(shown['limits.max_depth']?.origin.from, 'PMB_LIMITS_MAX_DEPTH');
    assert.equal(Object.keys(shown).length, 17 + Object.keys(DEFAULT_LIMITS).length);
  });

  it('acme: enabled by acme.email, with defaults and checked values', () => {
    const base = { hostname: 'box', systemFile: NO_SYSTEM_FILE };
    const on = resolveConfig({
      ...base,
      env: { PMB_DOMAIN: 'pmb.example.org', PMB_ACME_EMAIL: 'me@example.org', PMB_DATA_DIR: '/d' },
    });
    assert.deepEqual(on.config.acme, {
      email: 'me@example.org',
      directory: 'https://acme-v02.api.letsencrypt.org/directory',
      domains: ['pmb.example.org'],
      httpPort: 80,
      caFile: undefined,
    });
    assert.equal(toServerConfig(on.config).acme?.domains[0], 'pmb.example.org');
    const list = resolveConfig({
      ...base,
      env: {
        PMB_ACME_EMAIL: 'me@example.org',
        PMB_ACME_DOMAINS: 'a.example.org, B.example.org',
        PMB_DATA_DIR: '/d',
      },
    });
    assert.deepEqual(list.config.acme?.domains, ['a.example.org', 'b.example.org']);
    assert.equal(resolveConfig({ ...base, env: { PMB_DATA_DIR: '/d' } }).config.acme, undefined);
    assert.throws(
      () => resolveConfig({ ...base, env: { PMB_ACME_EMAIL: 'nobody', PMB_DATA_DIR: '/d' } }),
      /PMB_ACME_EMAIL: "nobody" is not an email address/,
    );
    assert.throws(
      () =>
        resolveConfig({ ...base, env: { PMB_ACME_DIRECTORY: 'http://ca.example/dir', PMB_DATA_DIR: '/d' } }),
      /PMB_ACME_DIRECTORY: "http:\/\/ca\.example\/dir" is not an https:\/\/ URL/,
    );
    assert.throws(
      () => resolveConfig({ ...base, env: { PMB_ACME_HTTP_PORT: '99999', PMB_DATA_DIR: '/d' } }),
      /PMB_ACME_HTTP_PORT: "99999" is not a port/,
    );
  });

  it('names the source of a bad value', async () => {
    await using dir = await tempDir();
    const file = join(dir.path, 'pmb.toml');
    const opts = { systemFile: NO_SYSTEM_FILE };
    assert.throws(
      () => resolveConfig({ ...opts, flags: { port: '65536' } }),
      /^ConfigError: --port: "65536" is not a port/,
    );
    assert.throws(() => resolveConfig({ ...opts, env: { PMB_PORT: '-1' } }), /PMB_PORT: "-1" is not a port/);
    assert.throws(
      () => resolveConfig({ ...opts, flags: { domain: 'no spaces' } }),
      /--domain: "no spaces" is not a domain/,
    );
    assert.throws(
      () => resolveConfig({ ...opts, flags: { logLevel: 'loud' } }),
      /--log-level: "loud" is not one of fatal/,
    );
    assert.throws(
      () => resolveConfig({ ...opts, env: { PMB_REGISTRATION: 'sometimes' } }),
      /PMB_REGISTRATION: "sometimes" is not one of open, invite, closed/,
    );
    assert.throws(
      () => resolveConfig({ ...opts, env: { PMB_TRUST_PROXY: 'maybe' } }),
      /PMB_TRUST_PROXY: "maybe" is not true or false/,
    );

    await writeFile(file, 'port = "http"\n');
    assert.throws(
      () => resolveConfig({ ...opts, flags: { config: file } }),
      (err: Error) => err.message === `port in ${file}: "http" is not a port (0-65535; 0 picks a free one)`,
    );
    await writeFile(file, '[limits]\nmax_depth = 0\n');
    assert.throws(
      () => resolveConfig({ ...opts, flags: { config: file } }),
      new RegExp(`limits.max_depth in ${file}: 0 is not a positive whole number`),
    );
    await writeFile(file, '[limits]\nmax_depth = 2.5\n');
    assert.throws(
      () => resolveConfig({ ...opts, flags: { config: file } }),
      /2.5 is not a positive whole number/,
    );
    await writeFile(file, '[tls]\ncert = "c.pem"\n');
    assert.throws(
      () => resolveConfig({ ...opts, flags: { config: file } }),
      /tls.cert in .*: tls.cert is set but tls.key is not; TLS needs both/,
    );
    await writeFile(file, 'public_url = "ftp://x"\n');
    assert.throws(() => resolveConfig({ ...opts, flags: { config: file } }), /is not a URL like wss:/);
    await writeFile(file, 'port = \n');
    assert.throws(
      () => resolveConfig({ ...opts, flags: { config: file } }),
      new RegExp(`^ConfigError: ${file}: line 1: .*not valid TOML`),
    );
    assert.throws(
      () => resolveConfig({ ...opts, flags: { config: join(dir.path, 'missing.toml') } }),
      /missing.toml: no such config file/,
    );
  });

  it('refuses unknown keys with a hint', async () => {
    await using dir = await tempDir();
    const file = join(dir.path, 'pmb.toml');
    const opts = { systemFile: NO_SYSTEM_FILE, flags: { config: file } };
    await writeFile(file, 'prot = 8447\n');
    assert.throws(
      () => resolveConfig(opts),
      new RegExp(`${file}: unknown key "prot" \\(did you mean "port"\\?\\)`),
    );
    await writeFile(file, '[limits]\nmax_frame_byte = 5\n');
    assert.throws(
      () => resolveConfig(opts),
      /unknown key "limits.max_frame_byte" \(did you mean "limits.max_frame_bytes"\?\)/,
    );
    await writeFile(file, 'neighbours = { "b.test" = "127.0.0.1:1" }\n');
    assert.throws(() => resolveConfig(opts), /unknown key "neighbours" \(known keys: data_dir, domain/);
    await writeFile(file, 'tls = "yes"\n');
    assert.throws(() => resolveConfig(opts), /unknown key "tls"/);
    // data_dir cannot move the data dir from inside it.
    const dataDir = join(dir.path, 'data');
    await mkdir(dataDir);
    await writeFile(join(dataDir, 'pmb.toml'), 'data_dir = "/elsewhere"\n');
    assert.throws(
      () => resolveConfig({ systemFile: NO_SYSTEM_FILE, flags: { dataDir } }),
      /data_dir cannot be set in the data dir's own config file/,
    );
  });

  it('resolve: a map of domain -> host:port from the file, PMB_RESOLVE or repeated --resolve', async () => {
    await using dir = await tempDir();
    const file = join(dir.path, 'pmb.toml');
    const opts = { systemFile: NO_SYSTEM_FILE };
    await writeFile(
      file,
      ['[resolve]', '"b.test" = "127.0.0.1:8448"', '"C.Test" = "https://[::1]:8449/"', ''].join('\n'),
    );
    const f = resolveConfig({ ...opts, flags: { config: file } });
    assert.deepEqual(f.config.resolve, { 'b.test': '127.0.0.1:8448', 'c.test': 'https://[::1]:8449' });
    assert.deepEqual(f.origins.resolve, { source: 'file', from: file });
    assert.deepEqual(toServerConfig(f.config).resolve, f.config.resolve);
    const shown = configEntries(f).find((e) => e.key === 'resolve');
    assert.deepEqual(shown?.value, f.config.resolve);

    // A higher layer replaces the whole map.
    const env = { PMB_CONFIG: file, PMB_RESOLVE: 'b.test=127.0.0.1:9001, d.test=http://pmb-d.lan:8447' };
    const e = resolveConfig({ ...opts, env });
    assert.deepEqual(e.config.resolve, { 'b.test': '127.0.0.1:9001', 'd.test': 'pmb-d.lan:8447' });
    assert.deepEqual(e.origins.resolve, { source: 'env', from: 'PMB_RESOLVE' });
    const fl = resolveConfig({
      ...opts,
      env,
      flags: { resolve: ['b.test=127.0.0.1:1', 'e.test=127.0.0.1:2'] },
    });
    assert.deepEqual(fl.config.resolve, { 'b.test': '127.0.0.1:1', 'e.test': '127.0.0.1:2' });
    const peers = resolveConfig({
      env: { PMB_CONFIG: file, PMB_PEERS: 'b.test, c.test' },
      flags: { peer: ['B.test'] },
      systemFile: NO_SYSTEM_FILE,
    });
    assert.deepEqual(peers.config.peers, ['b.test']);
    assert.deepEqual(peers.origins.peers, { source: 'flag', from: '--peer' });
    assert.throws(
      () => resolveConfig({ env: { PMB_PEERS: 'b_x' }, systemFile: NO_SYSTEM_FILE }),
      /PMB_PEERS/,
    );
    assert.deepEqual(fl.origins.resolve, { source: 'flag', from: '--resolve' });

    const bad: [Parameters<typeof resolveConfig>[0], RegExp][] = [
      [{ flags: { resolve: ['b.test=127.0.0.1'] } }, /^ConfigError: --resolve: "127.0.0.1" has no port/],
      [{ flags: { resolve: ['b.test'] } }, /--resolve: "b.test" is not domain=host:port/],
      [{ flags: { resolve: ['b.test=1.2.3.4:1', 'b.test=1.2.3.4:2'] } }, /--resolve: b.test is given twice/],
      [{ env: { PMB_RESOLVE: 'b_x=127.0.0.1:1' } }, /PMB_RESOLVE: "b_x" is not a domain name/],
      [
        { env: { PMB_RESOLVE: 'b.test=127.0.0.1:70000' } },
        /PMB_RESOLVE: "127.0.0.1:70000": the port must be 1-65535/,
      ],
      [
        { env: { PMB_RESOLVE: 'b.test=ws://[::1]:1' } },
        /PMB_RESOLVE: "ws:\/\/\[::1\]:1": the scheme may only be/,
      ],
    ];
    for (const [o, message] of bad) assert.throws(() => resolveConfig({ ...opts, ...o }), message);

    const inFile: [string, RegExp][] = [
      ['[resolve]\nb.test = "127.0.0.1:1"\n', /"b" is a table: quote domain names that hold dots/],
      ['[resolve]\n"b.test" = 8448\n', /b.test = 8448: the target is a string/],
      ['resolve = 5\n', /5 is not a table of "domain" = "host:port"/],
      ['[resolve]\n"b.test" = "300.0.0.1:1"\n', /300.0.0.1 is not an IPv4 address/],
    ];
    for (const [text, message] of inFile) {
      await writeFile(file, text);
      assert.throws(
        () => resolveConfig({ ...opts, flags: { config: file } }),
        (err: Error) => err.message.startsWith(`resolve in ${file}: `) && message.test(err.message),
        text,
      );
    }
  });

  it('makes a usable default domain from any hostname', () => {
    assert.equal(defaultDomain('My_Laptop'), 'my-laptop.local');
    assert.equal(defaultDomain('--'), 'pmb.local');
    assert.equal(defaultDomain('raspberrypi'), 'raspberrypi.local');
  });
});

describe('client address behind a proxy', () => {
  const req = (forwarded?: string) =>
    ({
      socket: { remoteAddress: '127.0.0.1' },
      headers: forwarded ? { 'x-forwarded-for': forwarded } : {},
    }) as unknown as IncomingMessage;

  it('ignores X-Forwarded-For unless trust_proxy is set, then takes the hop the proxy added', () => {
    assert.equal(clientAddress(req('203.0.113.9')), '127.0.0.1');
    assert.equal(clientAddress(req('203.0.113.9'), true), '203.0.113.9');
    // A client may send its own X-Forwarded-For: the proxy appends the real address last.
    assert.equal(clientAddress(req('10.9.9.9, 198.51.100.7'), true), '198.51.100.7');
    assert.equal(clientAddress(req(), true), '127.0.0.1');
  });
});
