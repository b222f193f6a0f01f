import { isIPv6 } from 'node:net';
import { DOMAIN_RE } from '../protocol/schemas.js';

/**
 * The resolve map: `domain -> where its server is`, used instead of DNS (like curl's --resolve) by tests and
 * offline setups. A target is `host:port` (plain http) or `https://host:port`; host is an IPv4 address, an
 * `[IPv6]` address in brackets or a host name. With https the certificate is still checked against the
 * domain, not against host.
 */
export interface ResolveTarget {
  scheme: 'http' | 'https';
  /** As in a URL: IPv6 addresses keep their brackets. */
  host: string;
  port: number;
  /** `http(s)://host:port`, the base the discovery document is fetched from. */
  origin: string;
}

/** A resolve target that cannot be used; the message says why, without naming where it came from. */
export class ResolveError extends Error {
  override readonly name = 'ResolveError';
}

const IPV4_SHAPE = /^\d+(\.\d+){3}$/;
const EXAMPLE = 'host:port or https://host:port, e.g. 127.0.0.1:8448';

/** Parses one target (`127.0.0.1:8448`, `https://[::1]:8448`, `http://pmb-b.lan:8447`). */
export function parseResolveTarget(value: string): ResolveTarget {
  const text = value.trim();
  const shown = JSON.stringify(value);
  let scheme: 'http' | 'https' = 'http';
  let rest = text;
  const withScheme = /^([a-z][a-z0-9+.-]*):\/\/(.*)$/i.exec(text);
  if (withScheme) {
    const s = withScheme[1]!.toLowerCase();
    if (s !== 'http' && s !== 'https') {
      throw new ResolveError(`${shown}: the scheme may only be http:// or https:// (${EXAMPLE})`);
    }
    scheme = s;
    rest = withScheme[2]!.replace(/\/$/, '');
  }
  let host: string;
  let portText: string;
  if (rest.startsWith('[')) {
    const m = /^\[([^\]]*)\]:([^:]*)$/.exec(rest);
    if (!m) throw new ResolveError(`${shown} is not ${EXAMPLE} ([IPv6]:port for IPv6)`);
    if (!isIPv6(m[1]!)) throw new ResolveError(`${shown}: [${m[1]}] is not an IPv6 address`);
    host = `[${m[1]!.toLowerCase()}]`;
    portText = m[2]!;
  } else {
    const colon = rest.lastIndexOf(':');
    if (colon < 0) throw new ResolveError(`${shown} has no port (${EXAMPLE})`);
    host = rest.slice(0, colon).toLowerCase();
    portText = rest.slice(colon + 1);
    if (host.includes(':')) {
      throw new ResolveError(`${shown}: put an IPv6 address in brackets, e.g. [::1]:8448`);
    }
    if (IPV4_SHAPE.test(host)) {
      if (host.split('.').some((o) => Number(o) > 255 || (o.length > 1 && o.startsWith('0')))) {
        throw new ResolveError(`${shown}: ${host} is not an IPv4 address`);
      }
    } else if (!DOMAIN_RE.test(host)) {
      throw new ResolveError(`${shown}: "${host}" is not a host name, IPv4 address or [IPv6] address`);
    }
  }
  const port = Number(portText);
  if (!/^\d{1,5}$/.test(portText) || port < 1 || port > 65535) {
    throw new ResolveError(`${shown}: the port must be 1-65535`);
  }
  return { scheme, host, port, origin: `${scheme}://${host}:${port}` };
}

/** The canonical text of a target: `host:port` for http, `https://host:port` for https. */
export function formatResolveTarget(target: ResolveTarget): string {
  return target.scheme === 'http' ? `${target.host}:${target.port}` : target.origin;
}

/** A domain as a resolve map key: lowercased, checked against DOMAIN_RE. */
export function resolveDomain(value: string): string {
  const d = value.trim().toLowerCase();
  if (!DOMAIN_RE.test(d)) throw new ResolveError(`${JSON.stringify(value)} is not a domain name`);
  return d;
}

/**
 * Parses `domain=target` entries (each may hold several, comma-separated: the PMB_RESOLVE form) into a
 * map with canonical targets. A domain given twice is an error.
 */
export function parseResolveEntries(entries: readonly string[]): Record<string, string> {
  const map: Record<string, string> = {};
  for (const entry of entries.flatMap((e) => e.split(','))) {
    if (entry.trim() === '') continue;
    const eq = entry.indexOf('=');
    if (eq < 0) {
      throw new ResolveError(
        `${JSON.stringify(entry.trim())} is not domain=host:port (e.g. b.test=127.0.0.1:8448)`,
      );
    }
    addResolveEntry(map, entry.slice(0, eq), entry.slice(eq + 1));
  }
  return map;
}

/** Adds one checked entry to a map, refusing a domain that is already there. */
export function addResolveEntry(map: Record<string, string>, domain: string, target: string): void {
  const d = resolveDomain(domain);
  if (Object.hasOwn(map, d)) throw new ResolveError(`${d} is given twice`);
  map[d] = formatResolveTarget(parseResolveTarget(target));
}
