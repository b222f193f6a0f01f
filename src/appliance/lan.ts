import { hostname, networkInterfaces } from 'node:os';
import { defaultDomain } from './config.js';

/** This box's IPv4 addresses on its networks (not loopback): where other devices of the home reach it. */
export function lanAddresses(): string[] {
  const out: string[] = [];
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) out.push(a.address);
  }
  return out;
}

/** True for 0.0.0.0 / :: (every interface). */
export function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::' || host === '[::]';
}

/** The names other devices can use for this box when it listens on every interface: mDNS name, then IPs. */
export function reachableHosts(host: string): string[] {
  if (!isWildcard(host)) return [host.includes(':') ? `[${host}]` : host];
  return [defaultDomain(hostname()), ...lanAddresses()];
}
