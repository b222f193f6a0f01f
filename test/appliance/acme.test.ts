import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { request as httpGet } from 'node:http';
import { request as httpsGet } from 'node:https';
import { createServer as createNetServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { pino } from 'pino';
import type WebSocket from 'ws';
import { resolveConfig, toServerConfig } from '../../src/appliance/config.js';
import { checkTls } from '../../src/appliance/doctor.js';
import { startAppliance } from '../../src/appliance/start.js';
import type { AcmeTiming } from '../../src/server/config.js';
import { createServer } from '../../src/server/index.js';
import type { Logger } from '../../src/server/logger.js';
import { connectUser, inbox, tempDir, trustingWebSocket } from '../helpers/servers.js';
import { selfSigned } from '../helpers/tls.js';

/**
 * ACME against the real RFC 8555 test CA from Debian's `pebble` package (pebble + pebble-challtestsrv as
 * its DNS), on loopback: pebble's validation authority really fetches the HTTP-01 challenge from PMB's
 * challenge listener (no PEBBLE_VA_ALWAYS_VALID).
 */

const DOMAIN = 'a.test';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createNetServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

function which(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function get(
  url: string,
  opts: { ca?: Buffer } = {},
): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = (url.startsWith('https:') ? httpsGet : httpGet)(url, { ...opts, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

/** The certificate a TLS port serves (SNI a.test), verified against pebble's root. */
function servedCertificate(port: number, ca: Buffer): Promise<X509Certificate> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, servername: DOMAIN, ca }, () => {
      const raw = socket.getPeerX509Certificate();
      socket.end();
      if (raw) resolve(raw);
      else reject(new Error('no peer certificate'));
    });
    socket.on('error', reject);
  });
}

async function until<T>(what: string, ms: number, probe: () => Promise<T | undefined>): Promise<T> {
  const end = Date.now() + ms;
  let last: unknown;
  while (Date.now() < end) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 150));
  }
  throw new Error(`timed out waiting for ${what}${last ? ` (last error: ${String(last)})` : ''}`);
}

interface Pebble {
  directory: string;
  /** pebble's own https certificate: trusted through acme.ca_file. */
  caFile: string;
  /** The root that issues pebble's certificates (from the management API). */
  root: Buffer;
  challengePort: number;
  stop(): Promise<void>;
}

async function startPebble(dir: string): Promise<Pebble> {
  const missing = ['pebble', 'pebble-challtestsrv', 'openssl'].filter((c) => !which(c));
  if (missing.length > 0) {
    throw new Error(
      `${missing.join(', ')} not installed: the ACME tests need the real test CA (apt-get install pebble openssl; .ci/run installs them)`,
    );
  }
  const { cert: caFile, key: keyFile } = selfSigned(dir, 'localhost', 2);
  const [acmePort, mgmtPort, dnsPort, dnsMgmtPort, challengePort, tlsPort] = (await Promise.all(
    Array.from({ length: 6 }, () => freePort()),
  )) as [number, number, number, number, number, number];
  const config = join(dir, 'pebble.json');
  await writeFile(
    config,
    JSON.stringify({
      pebble: {
        listenAddress: `127.0.0.1:${acmePort}`,
        managementListenAddress: `127.0.0.1:${mgmtPort}`,
        certificate: caFile,
        privateKey: keyFile,
        httpPort: challengePort,
        tlsPort,
        ocspResponderURL: '',
        externalAccountBindingRequired: false,
      },
    }),
  );
  const children: ChildProcess[] = [];
  const output: string[] = [];
  const run = (cmd: string, args: string[], env: NodeJS.ProcessEnv) => {
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout?.on('data', (d: Buffer) => output.push(d.toString()));
    child.stderr?.on('data', (d: Buffer) => output.push(d.toString()));
    children.push(child);
    return child;
  };
  const env: NodeJS.ProcessEnv = { ...process.env, PEBBLE_VA_NOSLEEP: '1', PEBBLE_WFE_NONCEREJECT: '0' };
  delete env.PEBBLE_VA_ALWAYS_VALID;
  // The DNS pebble's validation authority asks: every name is 127.0.0.1 (no AAAA answers).
  run(
    'pebble-challtestsrv',
    [
      '-dns01',
      `127.0.0.1:${dnsPort}`,
      '-http01',
      '',
      '-https01',
      '',
      '-tlsalpn01',
      '',
      '-management',
      `127.0.0.1:${dnsMgmtPort}`,
      '-defaultIPv4',
      '127.0.0.1',
      '-defaultIPv6',
      '',
    ],
    env,
  );
  run('pebble', ['-config', config, '-dnsserver', `127.0.0.1:${dnsPort}`], env);
  const stop = async () => {
    for (const c of children) {
      if (c.exitCode === null && c.signalCode === null) {
        const gone = new Promise((r) => c.once('exit', r));
        c.kill('SIGTERM');
        await gone;
      }
    }
  };
  try {
    const ca = await readFile(caFile);
    const directory = `https://127.0.0.1:${acmePort}/dir`;
    await until('pebble', 15_000, async () =>
      (await get(directory, { ca })).status === 200 ? true : undefined,
    );
    const root = await until('pebble root', 5000, async () => {
      const r = await get(`https://127.0.0.1:${mgmtPort}/roots/0`, { ca });
      return r.status === 200 ? Buffer.from(r.body) : undefined;
    });
    return { directory, caFile, root, challengePort, stop };
  } catch (err) {
    await stop();
    throw new Error(`pebble did not start: ${String(err)}\n${output.join('')}`);
  }
}

function capturingLogger(): { log: Logger; lines: () => Record<string, unknown>[] } {
  const raw: string[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => raw.push(s) });
  return { log, lines: () => raw.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

async function startAcmeServer(
  dir: string,
  pebble: Pebble,
  opts: { directory?: string; timing?: Partial<AcmeTiming>; log?: Logger } = {},
) {
  await mkdir(dir, { recursive: true });
  const dataDir = join(dir, 'data');
  const configFile = join(dir, 'pmb.toml');
  await writeFile(
    configFile,
    [
      `domain = "${DOMAIN}"`,
      'registration = "open"',
      '[acme]',
      'email = "admin@example.org"',
      `directory = "${opts.directory ?? pebble.directory}"`,
      `domains = ["${DOMAIN}"]`,
      `http_port = ${pebble.challengePort}`,
      `ca_file = "${pebble.caFile}"`,
      '',
    ].join('\n'),
  );
  const resolved = resolveConfig({
    flags: { config: configFile, dataDir, port: '0', logLevel: 'silent' },
    env: {},
    systemFile: '/nonexistent/pmb.toml',
  });
  assert.equal(resolved.origins['acme.email']?.source, 'file');
  assert.deepEqual(resolved.config.acme?.domains, [DOMAIN]);
  if (!opts.timing) {
    const { server } = await startAppliance(resolved, opts.log ? { log: opts.log } : {});
    return { server, resolved, dataDir };
  }
  // Shortened timings are a ServerConfig knob (not a setting): the server is made directly.
  const config = toServerConfig(resolved.config);
  assert.ok(config.acme);
  const server = createServer(
    { ...config, acme: { ...config.acme, timing: opts.timing } },
    opts.log ? { log: opts.log } : {},
  );
  await server.start();
  return { server, resolved, dataDir };
}

describe('ACME (pebble, HTTP-01)', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let pebble: Pebble;

  before(async () => {
    dir = await tempDir();
    pebble = await startPebble(dir.path);
  });
  after(async () => {
    await pebble?.stop();
    await dir?.[Symbol.asyncDispose]();
  });

  it('gets a certificate at start; the SDK registers and exchanges a message over wss://', async () => {
    const { log, lines } = capturingLogger();
    const { server, resolved, dataDir } = await startAcmeServer(join(dir.path, 'one'), pebble, { log });
    try {
      // pebble's validation authority fetched the challenge from our listener (nothing is "always valid").
      assert.ok(lines().some((l) => l.msg === 'ACME: challenge answered'));
      assert.match(server.url, /^wss:\/\/127\.0\.0\.1:\d+$/);
      const cert = await servedCertificate(server.port, pebble.root);
      assert.ok(cert.checkHost(DOMAIN), `served certificate names ${cert.subjectAltName}`);
      assert.match(cert.subjectAltName ?? '', /DNS:a\.test/);
      for (const f of ['account.key', 'key.pem', 'cert.pem']) {
        assert.equal((await stat(join(dataDir, 'acme', f))).mode & 0o777, 0o600, f);
      }

      // The server listens on 127.0.0.1; the certificate names a.test.
      const TrustingWS = trustingWebSocket({
        ca: pebble.root,
        servername: DOMAIN,
      } as WebSocket.ClientOptions);
      const alice = await connectUser(server, 'alice', { WebSocket: TrustingWS });
      const bob = await connectUser(server, 'bob', { WebSocket: TrustingWS });
      const got = inbox(bob);
      await alice.send(`bob@${DOMAIN}`, 'over ACME wss');
      await got.waitFor(1);
      assert.equal(got.messages[0]?.text, 'over ACME wss');
      alice.close();
      bob.close();

      // The challenge listener answers nothing but challenges: everything else goes to https.
      const plain = await get(`http://127.0.0.1:${pebble.challengePort}/some/path?x=1`);
      assert.equal(plain.status, 301);
      assert.equal(plain.headers.location, `https://${DOMAIN}/some/path?x=1`);
      const unknown = await get(`http://127.0.0.1:${pebble.challengePort}/.well-known/acme-challenge/nope`);
      assert.equal(unknown.status, 404);

      const check = await checkTls({ config: resolved.config, env: {} });
      assert.match(JSON.stringify(check), /"status":"ok".*certificate for a\.test.*ACME/);
    } finally {
      await server.close();
    }
    // The next start finds the certificate on disk and serves it at once (no new order).
    const again = await startAcmeServer(join(dir.path, 'one'), pebble, { log });
    try {
      const before = new X509Certificate(await readFile(join(dataDir, 'acme', 'cert.pem')));
      const served = await servedCertificate(again.server.port, pebble.root);
      assert.equal(served.serialNumber, before.serialNumber);
    } finally {
      await again.server.close();
    }
  });

  it('renews a certificate that is due and swaps it into the running listener', async () => {
    let skew = 0;
    const { server, dataDir } = await startAcmeServer(join(dir.path, 'two'), pebble, {
      timing: { checkEveryMs: 200, now: () => Date.now() + skew },
    });
    try {
      const first = await servedCertificate(server.port, pebble.root);
      // The clock moves to 10 days before the certificate's end: it is due (renewal at 30 days).
      skew = Date.parse(first.validTo) - 10 * 86_400_000 - Date.now();
      const renewed = await until('the renewed certificate to be served', 30_000, async () => {
        const served = await servedCertificate(server.port, pebble.root);
        return served.serialNumber !== first.serialNumber ? served : undefined;
      });
      skew = 0;
      assert.ok(renewed.checkHost(DOMAIN));
      const onDisk = new X509Certificate(await readFile(join(dataDir, 'acme', 'cert.pem')));
      await until('the served certificate to settle', 5000, async () => {
        const now = new X509Certificate(await readFile(join(dataDir, 'acme', 'cert.pem')));
        const served = await servedCertificate(server.port, pebble.root);
        return served.serialNumber === now.serialNumber ? true : undefined;
      });
      assert.notEqual(onDisk.serialNumber, first.serialNumber);
    } finally {
      await server.close();
    }
  });

  it('an unreachable ACME directory: a clear error, the challenge listener stays, retries with backoff', async () => {
    const { log, lines } = capturingLogger();
    const closed = await freePort();
    const directory = `https://127.0.0.1:${closed}/dir`;
    const { server } = await startAcmeServer(join(dir.path, 'three'), pebble, {
      directory,
      log,
      timing: { startWaitMs: 2000, retryMinMs: 200, retryMaxMs: 400, httpRetries: 0 },
    });
    try {
      const errors = () =>
        lines().filter((l) => l.level === 50 && String(l.msg).startsWith('ACME: could not'));
      await until('two failed attempts', 10_000, async () => (errors().length >= 2 ? true : undefined));
      const [firstError] = errors();
      assert.match(
        String(firstError?.msg),
        new RegExp(
          `could not get a certificate for a\\.test from ${directory.replace(/[.]/g, '\\.')}: .*ECONNREFUSED.*; retrying in`,
        ),
      );
      assert.ok(lines().some((l) => String(l.msg).startsWith('no TLS certificate yet')));
      // No certificate: the main port is not open (no plain-text fallback); the challenge listener is.
      assert.equal(server.port, 0);
      const plain = await get(`http://127.0.0.1:${pebble.challengePort}/`);
      assert.equal(plain.status, 301);
      assert.match(String(plain.headers.location), /^https:\/\/a\.test\//);
    } finally {
      await server.close();
    }
    // Closed: no more attempts.
    const count = lines().length;
    await new Promise((r) => setTimeout(r, 600));
    assert.equal(lines().length, count);
  });
});
