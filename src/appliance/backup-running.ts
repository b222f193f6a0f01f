import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { errnoOf } from './durable-files.js';
import { localRequest } from './local-http.js';
import { ApplianceError } from './task-error.js';

/** The server serving a data dir, as backup, restore and upgrade need it. */
export interface ServingServer {
  /** ws://host:port from server.json. */
  url: string;
  /** http://host:port: health, discovery and the admin API. */
  httpUrl: string;
  pid: number | undefined;
  domain: string | undefined;
  fingerprint: string | undefined;
  /** The admin token from the data dir (0600: only the server's user can read it). */
  adminToken(): Promise<string>;
}

/**
 * The server serving `dataDir`, if one is: server.json names it and it answers. A server.json whose
 * server does not answer but whose process is alive is an error (it may be starting or stuck); one whose
 * process is gone is a leftover of a crash and means "not running".
 */
export async function findServingServer(
  dataDir: string,
  signal?: AbortSignal,
): Promise<ServingServer | undefined> {
  let info: { url?: unknown; pid?: unknown };
  try {
    info = JSON.parse(await readFile(join(dataDir, 'server.json'), 'utf8')) as typeof info;
  } catch (err) {
    if (errnoOf(err) === 'ENOENT' || errnoOf(err) === 'ENOTDIR' || err instanceof SyntaxError)
      return undefined;
    throw err;
  }
  if (typeof info.url !== 'string') return undefined;
  const pid = typeof info.pid === 'number' ? info.pid : undefined;
  const httpUrl = toHttpUrl(info.url);
  try {
    signal?.throwIfAborted();
    // localRequest: on loopback a self-signed or renewing TLS certificate must not hide the server.
    const res = await localRequest(`${httpUrl}/.well-known/pmb`, { timeoutMs: 5000 });
    if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
    const body = JSON.parse(res.body) as { domain?: unknown; fingerprint?: unknown };
    return {
      url: info.url,
      httpUrl,
      pid,
      domain: typeof body.domain === 'string' ? body.domain : undefined,
      fingerprint: typeof body.fingerprint === 'string' ? body.fingerprint : undefined,
      adminToken: () => readAdminToken(dataDir),
    };
  } catch {
    if (pid !== undefined && pid !== process.pid && alive(pid)) {
      throw new ApplianceError(
        'server_unreachable',
        `${join(dataDir, 'server.json')} says process ${pid} serves ${info.url}, but it does not answer: ` +
          'wait for it to start or stop it (remove server.json if no PMB server runs)',
      );
    }
    return undefined;
  }
}

export async function readAdminToken(dataDir: string): Promise<string> {
  try {
    return (await readFile(join(dataDir, 'admin-token'), 'utf8')).trim();
  } catch (err) {
    if (errnoOf(err) === 'EACCES') {
      throw new ApplianceError(
        'forbidden',
        `Cannot read ${join(dataDir, 'admin-token')}: run as the server's user`,
      );
    }
    throw new ApplianceError(
      'no_admin_token',
      `No admin token in ${dataDir}: is that the server's data dir?`,
    );
  }
}

/** ws://h:p -> http://h:p; a server bound to every interface is reached on loopback. */
export function toHttpUrl(wsUrl: string): string {
  const url = new URL(wsUrl);
  url.protocol = url.protocol === 'wss:' || url.protocol === 'https:' ? 'https:' : 'http:';
  if (url.hostname === '0.0.0.0') url.hostname = '127.0.0.1';
  if (url.hostname === '[::]') url.hostname = '[::1]';
  return url.toString().replace(/\/$/, '');
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return errnoOf(err) === 'EPERM';
  }
}
