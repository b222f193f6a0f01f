import { usageError } from './errors.js';

/**
 * A PMB server address as users type it: ws(s)://host:port, http(s)://host:port (same port serves both)
 * or bare host:port. Returns the WebSocket URL.
 */
export function normalizeServerUrl(text: string): string {
  let t = text.trim();
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(t)) t = `ws://${t}`;
  let url: URL;
  try {
    url = new URL(t);
  } catch {
    throw usageError(`"${text}" is not a server address (expected ws://HOST:PORT)`);
  }
  const scheme = { 'ws:': 'ws:', 'wss:': 'wss:', 'http:': 'ws:', 'https:': 'wss:' }[url.protocol];
  if (!scheme || !url.hostname) {
    throw usageError(`"${text}" is not a server address (expected ws://HOST:PORT)`);
  }
  url.protocol = scheme;
  return url.toString().replace(/\/$/, '');
}

/** The HTTP base URL (admin API, health) of a server given by its WebSocket or HTTP URL. */
export function httpBaseUrl(text: string): string {
  const url = new URL(normalizeServerUrl(text));
  url.protocol = url.protocol === 'wss:' ? 'https:' : 'http:';
  // A server bound to every interface is reached on loopback from the same box.
  if (url.hostname === '0.0.0.0') url.hostname = '127.0.0.1';
  if (url.hostname === '[::]') url.hostname = '[::1]';
  return url.toString().replace(/\/$/, '');
}
