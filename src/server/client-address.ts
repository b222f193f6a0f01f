import type { IncomingMessage } from 'node:http';

/**
 * The address per-address limits count against. Behind a reverse proxy every connection comes from the
 * proxy, so with trustProxy the last X-Forwarded-For entry (the one the proxy itself appended) is taken.
 * Never trust the header otherwise: any client could name any address in it.
 */
export function clientAddress(req: IncomingMessage, trustProxy = false): string {
  const peer = req.socket.remoteAddress ?? 'unknown';
  if (!trustProxy) return peer;
  const header = req.headers['x-forwarded-for'];
  const list = (Array.isArray(header) ? header.join(',') : (header ?? ''))
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  return list.at(-1) ?? peer;
}
