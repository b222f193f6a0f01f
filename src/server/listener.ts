import { readFile, stat } from 'node:fs/promises';
import { createServer as createHttpServer, type Server as HttpServer, type RequestListener } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
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
  if (!tls) return { server: createHttpServer(handler), stop() {}, async reload() {} };
  const load = async () => ({
    cert: await readPem(tls.cert, 'tls.cert'),
    key: await readPem(tls.key, 'tls.key'),
  });
  const server = createHttpsServer(await load(), handler);
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
