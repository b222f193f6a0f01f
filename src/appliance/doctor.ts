import { execFile } from 'node:child_process';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, statfs } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { acmeFiles } from '../server/acme-files.js';
import { integrityCheckFile } from '../store/integrity.js';
import type { PmbConfig } from './config.js';
import { readSetupToken, SETUP_TOKEN_FILE } from './first-run.js';
import { isWildcard, lanAddresses } from './lan.js';
import { localRequest } from './local-http.js';
import { adminToken, findRunningServer, type RunningServer } from './running.js';

export type CheckStatus = 'ok' | 'warn' | 'fail' | 'skip';

export interface CheckResult {
  name: string;
  status: CheckStatus;
  /** What was found, in plain words. */
  message: string;
  /** What to do about it (warn/fail). */
  advice?: string;
}

export interface DoctorInput {
  config: PmbConfig;
  env: Record<string, string | undefined>;
  /** The running server, looked up once by runDoctor. */
  running?: RunningServer | undefined;
  now?: () => number;
}

type Check = (input: DoctorInput) => Promise<CheckResult | CheckResult[]>;

const GIB = 1024 ** 3;
/** A clock before this is surely wrong (a Pi without a battery clock, before NTP). */
const EARLIEST_SANE = Date.UTC(2025, 0, 1);

const ok = (name: string, message: string): CheckResult => ({ name, status: 'ok', message });
const warn = (name: string, message: string, advice: string): CheckResult => ({
  name,
  status: 'warn',
  message,
  advice,
});
const fail = (name: string, message: string, advice: string): CheckResult => ({
  name,
  status: 'fail',
  message,
  advice,
});
const skip = (name: string, message: string): CheckResult => ({ name, status: 'skip', message });

const startAdvice = (config: PmbConfig) =>
  `start it: pmb serve --data-dir ${config.dataDir} (or, if installed as a service: sudo systemctl start pmb)`;

export const checkServer: Check = async ({ config, running }) => {
  if (!running)
    return fail('server', `not running (no server.json in ${config.dataDir})`, startAdvice(config));
  if (running.error) {
    return fail(
      'server',
      `server.json names ${running.url}${running.pid ? ` (pid ${running.pid})` : ''}, but /health does not answer (${running.error})`,
      `it may have crashed: check its log (journalctl -u pmb), then ${startAdvice(config)}`,
    );
  }
  return ok('server', `running at ${running.url}${running.pid ? ` (pid ${running.pid})` : ''}`);
};

/** TCP connect, true when something accepts. */
function canConnect(host: string, port: number, timeoutMs = 1500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port, timeout: timeoutMs });
    const done = (result: boolean) => {
      socket.destroy();
      resolve(result);
    };
    socket.once('connect', () => done(true));
    socket.once('timeout', () => done(false));
    socket.once('error', () => done(false));
  });
}

export const checkPort: Check = async ({ config, running }) => {
  if (running && !running.error) {
    const port = Number(new URL(running.url).port);
    if (!isWildcard(config.host) && !isWildcard(new URL(running.url).hostname)) {
      const { host } = new URL(running.url);
      const local = /^(127\.|localhost|\[::1\])/.test(host);
      return ok(
        'port',
        `${host} accepts connections${local ? ' (this box only; host = "0.0.0.0" opens it to the home network)' : ''}`,
      );
    }
    // Every interface: also try the addresses other devices of the home use.
    const results = await Promise.all(
      ['127.0.0.1', ...lanAddresses()].map(async (h) => ({ h, up: await canConnect(h, port) })),
    );
    const down = results.filter((r) => !r.up).map((r) => r.h);
    if (down.length > 0) {
      return fail(
        'port',
        `port ${port} does not answer on ${down.join(', ')}`,
        `a local firewall may block it: allow the port (e.g. sudo ufw allow ${port}/tcp)`,
      );
    }
    return ok('port', `port ${port} answers on ${results.map((r) => r.h).join(', ')}`);
  }
  if (config.port === 0) return skip('port', 'port 0 (a free one is picked at start): nothing to check');
  const host = isWildcard(config.host) ? '127.0.0.1' : config.host;
  if (await canConnect(host, config.port)) {
    return fail(
      'port',
      `${host}:${config.port} is taken by another program, so pmb serve could not listen there`,
      `stop that program (sudo ss -ltnp 'sport = :${config.port}' shows which) or set another port`,
    );
  }
  return ok('port', `${host}:${config.port} is free for pmb serve`);
};

function timedatectl(): Promise<Record<string, string> | undefined> {
  return new Promise((resolve) => {
    execFile('timedatectl', ['show'], { timeout: 2000 }, (err, stdout) => {
      if (err) return resolve(undefined);
      const out: Record<string, string> = {};
      for (const line of stdout.split('\n')) {
        const i = line.indexOf('=');
        if (i > 0) out[line.slice(0, i)] = line.slice(i + 1);
      }
      resolve(out);
    });
  });
}

export const checkClock: Check = async ({ running, now = Date.now }) => {
  const t = now();
  if (t < EARLIEST_SANE) {
    return fail(
      'clock',
      `the clock says ${new Date(t).toISOString()}, which cannot be right`,
      'set the time (sudo timedatectl set-ntp true; a Pi without a battery clock needs network time at boot)',
    );
  }
  if (running?.date !== undefined) {
    // The Date header has 1 s resolution.
    const skew = Math.abs(running.date - t);
    if (skew > 5000) {
      return warn(
        'clock',
        `the server's clock and this shell's differ by ${Math.round(skew / 1000)} s`,
        'are they on the same machine? Restart the server after fixing the time',
      );
    }
  }
  const ntp = await timedatectl();
  if (!ntp) return ok('clock', `${new Date(t).toISOString()} (NTP state unknown: timedatectl not available)`);
  if (ntp.NTPSynchronized === 'yes') return ok('clock', `${new Date(t).toISOString()}, synchronized by NTP`);
  if (ntp.NTP === 'no') {
    return warn('clock', 'network time (NTP) is off', 'turn it on: sudo timedatectl set-ntp true');
  }
  return warn(
    'clock',
    'not yet synchronized by NTP',
    'logins and signed records need a correct clock: check network time (timedatectl timesync-status)',
  );
};

export const checkDisk: Check = async ({ config }) => {
  if (!existsSync(config.dataDir)) return skip('disk', `${config.dataDir} does not exist yet`);
  let s: Awaited<ReturnType<typeof statfs>>;
  try {
    s = await statfs(config.dataDir);
  } catch (err) {
    return skip('disk', `cannot tell free space (${(err as Error).message})`);
  }
  const free = Number(s.bavail) * Number(s.bsize);
  const total = Number(s.blocks) * Number(s.bsize);
  const pct = total > 0 ? (free / total) * 100 : 100;
  const text = `${(free / GIB).toFixed(1)} GiB free (${pct.toFixed(0)}%) in ${config.dataDir}`;
  if (free < GIB || pct < 5) {
    return warn('disk', text, 'free some space: a full disk makes the server refuse new messages');
  }
  return ok('disk', text);
};

export const checkDatabase: Check = async ({ config, env, running }) => {
  const file = join(config.dataDir, 'pmb.db');
  if (running && !running.error) {
    const token = await adminToken(config.dataDir, env);
    if (!token) {
      return warn(
        'database',
        'cannot read the admin token to ask the server',
        "run pmb doctor as the server's user (e.g. sudo -u pmb pmb doctor)",
      );
    }
    try {
      const res = await localRequest(`${running.base}/admin/integrity`, {
        headers: { authorization: `Bearer ${token}` },
        timeoutMs: 60_000,
      });
      if (res.status === 403) {
        return warn('database', 'the server refused the admin token', "is this the server's --data-dir?");
      }
      const body = JSON.parse(res.body) as { ok?: boolean; result?: string[] };
      return verdict(body.ok === true, body.result ?? []);
    } catch (err) {
      return warn('database', `integrity check failed to run (${(err as Error).message})`, 'try again');
    }
  }
  if (!existsSync(file)) return skip('database', `no database yet (${file} is made at the first start)`);
  try {
    const result = integrityCheckFile(file);
    return verdict(result.length === 1 && result[0] === 'ok', result);
  } catch (err) {
    return warn(
      'database',
      `cannot open ${file} read-only (${(err as Error).message})`,
      "run as the server's user",
    );
  }
};

function verdict(sound: boolean, result: string[]): CheckResult {
  if (sound) return ok('database', 'integrity check passed');
  return fail(
    'database',
    `integrity check found problems: ${result.slice(0, 3).join('; ')}`,
    'stop the server and restore the latest backup (pmb backup restore); keep a copy of the damaged data dir',
  );
}

export const checkTls: Check = async ({ config, now = Date.now }) => {
  // With acme.email (and no tls.cert) the server gets and renews its certificate itself in <dataDir>/acme.
  const acme = !config.tls && config.acme ? config.acme : undefined;
  const tls = config.tls ?? (acme ? acmeFiles(config.dataDir) : undefined);
  if (!tls) {
    return ok('tls', 'not configured: plain ws:// (fine at home; for a public domain see docs/operator.md)');
  }
  const renewHint = acme
    ? `pmb renews it itself: look for "ACME" errors in the server log; the CA must reach port 80 (acme.http_port ${acme.httpPort})`
    : undefined;
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(await readFile(tls.cert));
  } catch (err) {
    if (acme && (err as NodeJS.ErrnoException).code === 'ENOENT') {
      return fail('tls', `no certificate from ${acme.directory} yet (ACME, ${tls.cert})`, renewHint ?? '');
    }
    return fail(
      'tls',
      `cannot read the certificate ${tls.cert} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
      'point tls.cert at a PEM certificate readable by the server (e.g. certbot fullchain.pem)',
    );
  }
  try {
    const key = createPrivateKey(await readFile(tls.key));
    if (!cert.checkPrivateKey(key)) {
      return fail('tls', `${tls.key} is not the key of ${tls.cert}`, 'point tls.key at the matching key');
    }
  } catch (err) {
    return fail(
      'tls',
      `cannot read the key ${tls.key} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
      'point tls.key at the PEM private key (e.g. certbot privkey.pem), readable by the server',
    );
  }
  const expires = Date.parse(cert.validTo);
  const days = Math.floor((expires - now()) / 86_400_000);
  if (!cert.checkHost(config.domain)) {
    return fail(
      'tls',
      `the certificate is for ${cert.subjectAltName ?? cert.subject}, not ${config.domain}`,
      `get a certificate for ${config.domain}`,
    );
  }
  if (days < 0) {
    return fail('tls', `the certificate expired on ${cert.validTo}`, renewHint ?? 'renew it (certbot renew)');
  }
  if (days < 14) {
    return warn(
      'tls',
      `the certificate expires in ${days} days`,
      renewHint ?? 'check that renewal runs (certbot renew --dry-run)',
    );
  }
  const from = acme ? ` (ACME, renewed automatically from ${new URL(acme.directory).host})` : '';
  return ok('tls', `certificate for ${config.domain}, valid for ${days} more days${from}`);
};

export const checkSetup: Check = async ({ config, running }) => {
  const token = await readSetupToken(config.dataDir);
  if (token) {
    const where = running ? `${running.base}/setup` : 'the URL pmb serve prints';
    return warn(
      'setup',
      'first-run setup is not finished',
      `open ${where} with the token from pmb init --show-token (${join(config.dataDir, SETUP_TOKEN_FILE)}), or run pmb init`,
    );
  }
  if (!existsSync(join(config.dataDir, 'pmb.db'))) {
    return warn(
      'setup',
      'this data dir was never started',
      'run pmb init (or start pmb serve and follow its setup link)',
    );
  }
  return ok('setup', `done (domain ${config.domain}, registration ${config.registration})`);
};

export const checkReachability: Check = async () => [
  skip('upnp', 'router port mapping (UPnP): not configured yet'),
  skip('onion', 'Tor onion service: not configured yet'),
];

export const CHECKS: Check[] = [
  checkServer,
  checkPort,
  checkClock,
  checkDisk,
  checkDatabase,
  checkTls,
  checkSetup,
  checkReachability,
];

/** Runs every check, one after another (they are quick); never throws for a failing check. */
export async function runDoctor(input: DoctorInput): Promise<{ ok: boolean; checks: CheckResult[] }> {
  const running = input.running ?? (await findRunningServer(input.config.dataDir));
  const checks: CheckResult[] = [];
  for (const check of CHECKS) {
    try {
      const r = await check({ ...input, running });
      checks.push(...(Array.isArray(r) ? r : [r]));
    } catch (err) {
      checks.push(
        fail(check.name || 'check', `the check itself failed: ${(err as Error).message}`, 'report this bug'),
      );
    }
  }
  return { ok: !checks.some((c) => c.status === 'fail'), checks };
}
