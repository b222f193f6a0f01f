import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { defaultDomain } from './config.js';
import { isWildcard } from './lan.js';
import { localRequest } from './local-http.js';

export interface RunningServer {
  /** WebSocket URL from server.json, e.g. ws://0.0.0.0:8447. */
  url: string;
  pid: number | undefined;
  /** http(s):// base on which this box reaches it (loopback for a wildcard listener). */
  base: string;
  /** Set when GET /health answered. */
  health?: Record<string, unknown>;
  /** The server's clock, from the Date header of /health. */
  date?: number;
  /** Why /health did not answer. */
  error?: string;
}

/**
 * The server a data dir's `server.json` names, asked for /health. Undefined when there is no server.json
 * (nothing was started there, or it stopped cleanly).
 */
export async function findRunningServer(
  dataDir: string,
  opts: { timeoutMs?: number } = {},
): Promise<RunningServer | undefined> {
  let info: { url?: unknown; pid?: unknown };
  try {
    info = JSON.parse(await readFile(join(dataDir, 'server.json'), 'utf8')) as typeof info;
  } catch {
    return undefined;
  }
  if (typeof info.url !== 'string') return undefined;
  const base = localBase(info.url);
  const found: RunningServer = {
    url: info.url,
    pid: typeof info.pid === 'number' ? info.pid : undefined,
    base,
  };
  try {
    const res = await localRequest(`${base}/health`, { timeoutMs: opts.timeoutMs ?? 3000 });
    if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
    found.health = JSON.parse(res.body) as Record<string, unknown>;
    const date = res.headers.date;
    if (typeof date === 'string') found.date = Date.parse(date);
  } catch (err) {
    found.error = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
  }
  return found;
}

/** The HTTP base on this box for a server URL: 0.0.0.0/:: become loopback. */
export function localBase(url: string): string {
  const u = new URL(url);
  u.protocol = u.protocol === 'wss:' || u.protocol === 'https:' ? 'https:' : 'http:';
  if (u.hostname === '0.0.0.0') u.hostname = '127.0.0.1';
  if (u.hostname === '[::]') u.hostname = '[::1]';
  return u.origin;
}

/** The address to give people for `pmb register --server`: public_url, else the listen URL as others see it. */
export function clientUrl(publicUrl: string | undefined, listenUrl: string): string {
  if (publicUrl) return publicUrl;
  const u = new URL(listenUrl);
  if (isWildcard(u.hostname)) u.hostname = defaultDomain(hostname());
  return u.toString().replace(/\/$/, '');
}

/** The admin token from $PMB_ADMIN_TOKEN or the data dir; undefined when unreadable. */
export async function adminToken(dataDir: string, env: Record<string, string | undefined>) {
  if (env.PMB_ADMIN_TOKEN) return env.PMB_ADMIN_TOKEN;
  try {
    return (await readFile(join(dataDir, 'admin-token'), 'utf8')).trim();
  } catch {
    return undefined;
  }
}
