import { X509Certificate } from 'node:crypto';
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { Agent, get as httpsGet } from 'node:https';
import type { AddressInfo } from 'node:net';
import acme from 'acme-client';
import { acmeFiles } from './acme-files.js';
import type { AcmeConfig, AcmeTiming } from './config.js';
import { type HandshakeLimits, limitHandshakes } from './listener.js';
import type { Logger } from './logger.js';

const DAY = 24 * 3600_000;

export const DEFAULT_ACME_TIMING: AcmeTiming = {
  renewBeforeMs: 30 * DAY,
  checkEveryMs: 12 * 3600_000,
  startWaitMs: 2 * 60_000,
  // Let's Encrypt allows 5 failed validations per hostname an hour: start at 5 min, doubling.
  retryMinMs: 5 * 60_000,
  retryMaxMs: 6 * 3600_000,
  httpRetries: 5,
  now: Date.now,
};

/** One ACME request may take this long (acme-client sets no timeout: a black-holed CA would hang). */
const REQUEST_TIMEOUT_MS = 30_000;

/**
 * acme-client sends every request through one shared axios instance, with no per-client agent or
 * retry setting; this interceptor adds ours to the requests for a directory's origin.
 */
const perOrigin = new Map<string, { agent: Agent | undefined; retries: number }>();
let intercepting = false;
function routeOrigin(directory: string, opts: { agent: Agent | undefined; retries: number }): void {
  perOrigin.set(new URL(directory).origin, opts);
  if (intercepting) return;
  intercepting = true;
  acme.axios.interceptors.request.use((request) => {
    let origin: string | undefined;
    try {
      origin = request.url ? new URL(request.url).origin : undefined;
    } catch {
      origin = undefined;
    }
    const o = origin ? perOrigin.get(origin) : undefined;
    if (!o) return request;
    if (o.agent) request.httpsAgent = o.agent;
    request.timeout ||= REQUEST_TIMEOUT_MS;
    // acme-client's retry interceptor counts retryAttempt up to acmeSettings.retryMaxAttempts.
    const r = request as typeof request & { retryAttempt?: number };
    if (r.retryAttempt === undefined) {
      const max = (acme.axios.defaults as { acmeSettings?: { retryMaxAttempts?: number } }).acmeSettings
        ?.retryMaxAttempts;
      if (max !== undefined && o.retries < max) r.retryAttempt = max - o.retries;
    }
    return request;
  });
}

export interface AcmeManagerOptions {
  dataDir: string;
  /** The address the challenge listener binds (the server's host). */
  host: string;
  log: Logger;
  /** Where plain-HTTP requests other than challenges are redirected: https://domain[:port]. */
  httpsBase: () => string;
  /** Called after a new certificate is written: open the TLS port, or reload it. */
  onCertificate: () => Promise<void>;
  /** Slowloris limits of the challenge listener (it faces the Internet too). */
  handshakes?: HandshakeLimits;
}

/**
 * Certificates from an ACME CA by HTTP-01: a plain-HTTP listener answers the CA's challenges (and
 * redirects everything else to https), a certificate is ordered when missing or due, and the check
 * repeats every 12 h; a failure is logged and retried with a doubling backoff.
 */
export class AcmeManager {
  readonly files: ReturnType<typeof acmeFiles>;
  private readonly timing: AcmeTiming;
  private readonly tokens = new Map<string, string>();
  private http: Server | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private closed = false;
  private failures = 0;
  private agent: Agent | undefined;
  private first: Promise<void> | undefined;
  private port = 0;

  constructor(
    private readonly config: AcmeConfig,
    private readonly opts: AcmeManagerOptions,
  ) {
    this.files = acmeFiles(opts.dataDir);
    this.timing = { ...DEFAULT_ACME_TIMING, ...config.timing };
  }

  /** The challenge listener's port once started. */
  get httpPort(): number {
    return this.port;
  }

  /** Starts the challenge listener, then the first check (which orders a certificate if needed). */
  async start(): Promise<void> {
    await mkdir(this.files.dir, { recursive: true, mode: 0o700 });
    let agent: Agent | undefined;
    if (this.config.caFile) {
      const ca = await readFile(this.config.caFile).catch((err: NodeJS.ErrnoException) => {
        throw new Error(`acme.ca_file: cannot read ${this.config.caFile} (${err.code ?? err.message})`);
      });
      agent = new Agent({ ca, keepAlive: false });
    }
    this.agent = agent;
    routeOrigin(this.config.directory, { agent, retries: this.timing.httpRetries });
    const http = createHttpServer((req, res) => this.handle(req, res));
    if (this.opts.handshakes) limitHandshakes(http, this.opts.handshakes);
    await new Promise<void>((resolve, reject) => {
      http.once('error', (err: NodeJS.ErrnoException) => {
        const hint =
          err.code === 'EACCES'
            ? ' (ports under 1024 need privileges: forward the router to a higher acme.http_port, or grant CAP_NET_BIND_SERVICE; see docs/operator.md)'
            : '';
        reject(
          new Error(
            `acme.http_port ${this.config.httpPort}: cannot listen (${err.code ?? err.message})${hint}`,
          ),
        );
      });
      http.listen(this.config.httpPort, this.opts.host, () => resolve());
    });
    this.http = http;
    this.port = (http.address() as AddressInfo).port;
    this.opts.log.info(
      { port: this.port, domains: this.config.domains },
      'ACME challenge listener on plain HTTP',
    );
    this.first = this.check();
  }

  /** Waits (at most ms) for the first check; true when a usable certificate exists afterwards. */
  async waitForCertificate(ms: number = this.timing.startWaitMs): Promise<boolean> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      this.first,
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, ms);
      }),
    ]);
    clearTimeout(timer);
    return this.usable();
  }

  /** A certificate and key exist and the certificate has not expired. */
  async usable(): Promise<boolean> {
    const cert = await this.current();
    return cert !== undefined && Date.parse(cert.validTo) > Date.now();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    const http = this.http;
    this.http = undefined;
    if (http) {
      http.closeAllConnections?.();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    }
  }

  private async current(): Promise<X509Certificate | undefined> {
    try {
      await readFile(this.files.key);
      return new X509Certificate(await readFile(this.files.cert));
    } catch {
      return undefined;
    }
  }

  /** Why a new certificate is needed, or undefined. */
  private async due(): Promise<string | undefined> {
    const cert = await this.current();
    if (!cert) return 'no certificate yet';
    const missing = this.config.domains.filter((d) => !cert.checkHost(d));
    if (missing.length > 0) return `the certificate does not name ${missing.join(', ')}`;
    const left = Date.parse(cert.validTo) - this.timing.now();
    if (left < this.timing.renewBeforeMs) return `the certificate expires on ${cert.validTo}`;
    return undefined;
  }

  private async check(): Promise<void> {
    let next = this.timing.checkEveryMs;
    try {
      const reason = await this.due();
      if (reason) {
        const { log } = this.opts;
        log.info(
          { domains: this.config.domains, directory: this.config.directory, reason },
          'ACME: ordering a certificate',
        );
        await this.order();
        if (this.closed) return;
        this.failures = 0;
        const cert = await this.current();
        log.info(
          { domains: this.config.domains, serial: cert?.serialNumber, validTo: cert?.validTo },
          'ACME: certificate obtained',
        );
        await this.opts.onCertificate();
      }
    } catch (err) {
      if (this.closed) return;
      this.failures++;
      next = Math.min(this.timing.retryMaxMs, this.timing.retryMinMs * 2 ** (this.failures - 1));
      const e = err as NodeJS.ErrnoException;
      const why =
        (e.code && !e.message.includes(e.code) ? `${e.code} ${e.message}` : e.message) || String(err);
      this.opts.log.error(
        {
          directory: this.config.directory,
          domains: this.config.domains,
          attempt: this.failures,
          retryInSeconds: Math.round(next / 1000),
        },
        `ACME: could not get a certificate for ${this.config.domains.join(', ')} from ${this.config.directory}: ${why}; retrying in ${formatDelay(next)}`,
      );
    }
    if (this.closed) return;
    this.timer = setTimeout(() => void this.check(), next);
    this.timer.unref?.();
  }

  /** One order by HTTP-01; the new key and certificate replace the old ones atomically (0600). */
  private async order(): Promise<void> {
    // acme-client reports a CA it cannot connect to as a TypeError from inside axios: ask first.
    await reach(this.config.directory, this.agent);
    let accountKey: Buffer;
    try {
      accountKey = await readFile(this.files.account);
    } catch {
      accountKey = await acme.crypto.createPrivateEcdsaKey();
      await writeFile(this.files.account, accountKey, { mode: 0o600 });
    }
    const client = new acme.Client({ directoryUrl: this.config.directory, accountKey });
    const [commonName, ...rest] = this.config.domains;
    const [key, csr] = await acme.crypto.createCsr(
      { commonName: commonName!, altNames: [commonName!, ...rest] },
      await acme.crypto.createPrivateEcdsaKey(),
    );
    const cert = await client.auto({
      csr,
      email: this.config.email,
      // Setting acme.email is the operator's agreement to the CA's terms (docs/operator.md).
      termsOfServiceAgreed: true,
      // The CA fetches the challenge itself; a check from inside would fail behind most home routers.
      skipChallengeVerification: true,
      challengePriority: ['http-01'],
      challengeCreateFn: async (_authz, challenge, keyAuthorization) => {
        this.tokens.set(challenge.token, keyAuthorization);
      },
      challengeRemoveFn: async (_authz, challenge) => {
        this.tokens.delete(challenge.token);
      },
    });
    if (this.closed) return;
    await replace(this.files.key, key);
    await replace(this.files.cert, Buffer.from(cert));
  }

  /** The challenge listener: the CA's HTTP-01 requests, and a redirect to https for anything else. */
  private handle(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const m = /^\/\.well-known\/acme-challenge\/([A-Za-z0-9_-]+)$/.exec(path);
    if (m) {
      const answer = this.tokens.get(m[1]!);
      if (!answer || (req.method !== 'GET' && req.method !== 'HEAD')) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
        return;
      }
      this.opts.log.debug({ token: m[1] }, 'ACME: challenge answered');
      res.writeHead(200, { 'content-type': 'text/plain' }).end(answer);
      return;
    }
    const target = `${this.opts.httpsBase()}${req.url?.startsWith('/') ? req.url : '/'}`;
    res.writeHead(301, { location: target, 'content-type': 'text/plain' }).end(`${target}\n`);
  }
}

/** GET the directory once, so that an unreachable CA gives a plain reason (ECONNREFUSED, a TLS error). */
function reach(url: string, agent: Agent | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = httpsGet(url, { ...(agent ? { agent } : {}), timeout: REQUEST_TIMEOUT_MS }, (res) => {
      res.resume();
      const status = res.statusCode ?? 0;
      if (status >= 200 && status < 300) resolve();
      else reject(new Error(`the ACME directory answered HTTP ${status}`));
    });
    req.on('timeout', () =>
      req.destroy(Object.assign(new Error('no answer in 30 s'), { code: 'ETIMEDOUT' })),
    );
    req.on('error', (err: NodeJS.ErrnoException) => {
      const first =
        err instanceof AggregateError ? (err.errors[0] as NodeJS.ErrnoException | undefined) : undefined;
      reject(new Error(`cannot reach the ACME directory (${err.code ?? first?.code ?? err.message})`));
    });
  });
}

async function replace(file: string, data: Buffer): Promise<void> {
  const tmp = `${file}.new`;
  await writeFile(tmp, data, { mode: 0o600 });
  await chmod(tmp, 0o600);
  await rename(tmp, file);
}

function formatDelay(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60_000) return `${Math.round(ms / 1000)} s`;
  if (ms < 3600_000) return `${Math.round(ms / 60_000)} min`;
  return `${Math.round(ms / 3600_000)} h`;
}
