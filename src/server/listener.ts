import { readFile, stat } from 'node:fs/promises';
import {
  createServer as createHttpServer,
  type Server as HttpServer,
  type IncomingMessage,
  type RequestListener,
} from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import type { ServerConfig } from './config.js';
import type { Logger } from './logger.js';

/** How often a TLS server looks for a renewed certificate (certbot/Caddy replace the files in place). */
const CERT_CHECK_MS = 10 * 60_000;

export type Listener = HttpServer | HttpsServer;

/**
 * Plain HTTP, or HTTPS when config.tls names a certificate and key (then WebSockets run as wss://).
 * A renewed certificate is picked up without a restart: the files are looked at every 10 minutes, and
 * reload() swaps them in at once (the ACME client calls it after writing a new certificate).
 */
export async function createListener(
  config: ServerConfig,
  handler: RequestListener,
  log: Logger,
): Promise<{ server: Listener; stop(): void; reload(): Promise<void> }> {
  const { tls } = config;
  const handshakes = handshakeLimits(config);
  if (!tls) {
    const server = createHttpServer(handler);
    limitHandshakes(server, handshakes);
    return { server, stop() {}, async reload() {} };
  }
  const load = async () => ({
    cert: await readPem(tls.cert, 'tls.cert'),
    key: await readPem(tls.key, 'tls.key'),
  });
  const server = createHttpsServer(await load(), handler);
  limitHandshakes(server, handshakes);
  let seen = await mtimes(tls);
  const reload = async (force: boolean) => {
    const now = await mtimes(tls);
    if (now === seen && !force) return;
    seen = now;
    server.setSecureContext(await load());
    log.info({ cert: tls.cert }, 'TLS certificate reloaded');
  };
  const timer = setInterval(() => {
    reload(false).catch((err: unknown) => log.warn({ err }, 'TLS certificate reload failed'));
  }, CERT_CHECK_MS);
  timer.unref?.();
  return { server, stop: () => clearInterval(timer), reload: () => reload(true) };
}

/** The handshake limits of a listener of this server (the main port, the ACME challenge port). */
export function handshakeLimits(config: Pick<ServerConfig, 'limits' | 'trustProxy'>): HandshakeLimits {
  return {
    timeoutMs: config.limits.handshakeTimeoutMs,
    // Behind a trusted proxy every connection comes from the proxy: only the proxy can count per client.
    ...(config.trustProxy ? {} : { perAddress: config.limits.connectionsPerAddress }),
  };
}

export interface HandshakeLimits {
  timeoutMs: number;
  perAddress?: number;
}

/**
 * Slowloris: Node never closes a connection that sends nothing, and checks slow headers only every 30 s.
 * A new connection must finish the headers of its first request (a WebSocket upgrade included, and the TLS
 * handshake before it) within `timeoutMs`, or it is destroyed; one address may hold at most `perAddress`
 * connections at that stage, more are dropped at once. Later requests on a kept-alive connection fall under
 * Node's own headersTimeout, set to the same value.
 */
export function limitHandshakes(server: Listener, opts: HandshakeLimits): void {
  type Waiting = { timer: ReturnType<typeof setTimeout>; address: string };
  // Keyed by the peer's address and port, which the TLS socket of a request shares with its TCP socket.
  const waiting = new Map<string, Waiting>();
  const perAddress = new Map<string, number>();
  const keyOf = (s: { remoteAddress?: string | undefined; remotePort?: number | undefined }) =>
    `${s.remoteAddress}|${s.remotePort}`;
  const done = (key: string, entry = waiting.get(key)) => {
    if (!entry || waiting.get(key) !== entry) return;
    waiting.delete(key);
    clearTimeout(entry.timer);
    const n = (perAddress.get(entry.address) ?? 1) - 1;
    if (n <= 0) perAddress.delete(entry.address);
    else perAddress.set(entry.address, n);
  };
  server.on('connection', (socket: Socket) => {
    const address = socket.remoteAddress ?? 'unknown';
    const n = perAddress.get(address) ?? 0;
    if (opts.perAddress !== undefined && n >= opts.perAddress) {
      socket.destroy();
      return;
    }
    perAddress.set(address, n + 1);
    const key = keyOf(socket);
    const timer = setTimeout(() => socket.destroy(), opts.timeoutMs);
    timer.unref?.();
    const entry = { timer, address };
    waiting.set(key, entry);
    socket.once('close', () => done(key, entry));
  });
  const headersIn = (req: IncomingMessage) => done(keyOf(req.socket));
  server.prependListener('request', headersIn);
  server.prependListener('upgrade', headersIn);
  if (server.requestTimeout === 0 || opts.timeoutMs < server.requestTimeout) {
    server.headersTimeout = opts.timeoutMs;
  }
}

async function readPem(file: string, what: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    throw Object.assign(new Error(`${what}: cannot read ${file} (${code})`), { code: 'tls_unreadable' });
  }
}

async function mtimes(tls: { cert: string; key: string }): Promise<string> {
  const [c, k] = await Promise.all([
    stat(tls.cert).catch(() => undefined),
    stat(tls.key).catch(() => undefined),
  ]);
  return `${c?.mtimeMs}:${k?.mtimeMs}`;
}
