import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import { type PublicIdentity, readPublicIdentity } from '../crypto/index.js';
import {
  type DiscoveryDocument,
  discoveryDocument,
  MAX_DISCOVERY_BYTES,
  WELL_KNOWN_PATH,
} from '../protocol/discovery.js';
import { PmbError } from '../protocol/errors.js';
import { PROTOCOL_VERSIONS } from '../protocol/version.js';
import { parseResolveTarget, ResolveError, type ResolveTarget, resolveDomain } from './resolve.js';

/** Another server, as its discovery document describes it, checked. */
export interface ServerInfo {
  domain: string;
  fingerprint: string;
  /** The server key, read under PMB's key rules; its fingerprint is `fingerprint`. */
  publicKey: PublicIdentity;
  /** Where its clients connect. */
  websocket: string;
  /**
   * Where this server opens its server link to it, and the `ws` options for that: `websocket`, except for a
   * domain in the resolve map, where it is that URL's path at the resolve target's host and port (ws for an
   * http target, wss for https). Like curl --resolve, the map overrides the address of the domain's server,
   * not the names: the Host header and, with wss, the certificate name stay those of `websocket`. The
   * reference server takes the upgrade on the port of its document, so the target serves both; without
   * this, a link would bypass what the map names (a relay, a tunnel, a test network's proxy).
   */
  link: { url: string; options: { headers?: Record<string, string>; servername?: string } };
  /** Protocol versions it speaks (at least one of ours). */
  versions: number[];
  registration: DiscoveryDocument['registration'];
  onion?: string;
  server2server?: string;
  /** Where the document came from (`http(s)://host:port/.well-known/pmb`). */
  source: string;
}

export interface DiscoveryOptions {
  /** domain -> `host:port` (http) or `https://host:port`, tried before DNS; see src/federation/resolve.ts. */
  resolve: Record<string, string>;
  /** For the whole request: connect, answer and body (default 5 s). */
  timeoutMs?: number;
  /** Extra CA certificates (PEM) trusted for https; default: the system's. */
  ca?: string | Buffer | (string | Buffer)[];
  /** Clock for the cache (ms). */
  now?: () => number;
}

export const DEFAULT_DISCOVERY_TIMEOUT_MS = 5000;
/** How long a Discovery keeps a checked answer. */
export const DISCOVERY_TTL_MS = 10 * 60_000;
const MAX_CACHED = 10_000;

/**
 * Finds and checks the server of `domain`: its resolve map entry if it has one, else
 * `https://<domain>/.well-known/pmb` through DNS. The document must match the schema, name `domain`, speak a
 * version we speak, and carry a PMB key whose fingerprint is the one it states. Errors are PmbErrors:
 * `unreachable`, `timeout`, `bad_server`, `wrong_domain`, `bad_key`, `unsupported_version`.
 */
export async function discoverServer(domain: string, opts: DiscoveryOptions): Promise<ServerInfo> {
  let wanted: string;
  let target: ResolveTarget | undefined;
  try {
    wanted = resolveDomain(domain);
    const entry = Object.hasOwn(opts.resolve, wanted) ? opts.resolve[wanted] : undefined;
    target = entry === undefined ? undefined : parseResolveTarget(entry);
  } catch (err) {
    if (err instanceof ResolveError)
      throw new PmbError('bad_request', `discovery of ${domain}: ${err.message}`);
    throw err;
  }
  const url = `${target ? target.origin : `https://${wanted}`}${WELL_KNOWN_PATH}`;
  const at = target ? `${target.origin} (resolve entry for ${wanted})` : `https://${wanted}`;
  const body = await fetchDocument(url, wanted, at, opts);

  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    throw new PmbError('bad_server', `server at ${at} sent a discovery document that is not JSON`);
  }
  const parsed = discoveryDocument.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue?.path.join('.') || 'document';
    throw new PmbError(
      'bad_server',
      `server at ${at} sent an invalid discovery document (${field}: ${issue?.message})`,
    );
  }
  const doc = parsed.data;
  if (doc.domain !== wanted) {
    throw new PmbError('wrong_domain', `server at ${at} says it is ${doc.domain}, not ${wanted}`);
  }
  if (!doc.versions.some((v) => (PROTOCOL_VERSIONS as readonly number[]).includes(v))) {
    throw new PmbError(
      'unsupported_version',
      `server at ${at} speaks protocol versions ${doc.versions.join(', ')}; we speak ${PROTOCOL_VERSIONS.join(', ')}`,
    );
  }
  let key: PublicIdentity;
  try {
    key = await readPublicIdentity(doc.publicKey);
  } catch (err) {
    const why = err instanceof PmbError ? err.message : String(err);
    throw new PmbError('bad_key', `server at ${at} publishes a key that is not a usable PMB key: ${why}`, {
      cause: err,
    });
  }
  if (key.fingerprint !== doc.fingerprint) {
    throw new PmbError(
      'bad_server',
      `server at ${at} publishes the key ${key.fingerprint} but claims the fingerprint ${doc.fingerprint}`,
    );
  }
  return {
    domain: wanted,
    fingerprint: key.fingerprint,
    publicKey: key,
    websocket: doc.websocket,
    link: target ? linkThrough(doc.websocket, target) : { url: doc.websocket, options: {} },
    versions: doc.versions,
    registration: doc.registration,
    ...(doc.onion !== undefined ? { onion: doc.onion } : {}),
    ...(doc.server2server !== undefined ? { server2server: doc.server2server } : {}),
    source: url,
  };
}

/** The `websocket` URL reached at a resolve target: its path there, under its own names (see ServerInfo.link). */
function linkThrough(websocket: string, target: ResolveTarget): ServerInfo['link'] {
  const u = new URL(websocket);
  const url = `${target.scheme === 'https' ? 'wss' : 'ws'}://${target.host}:${target.port}${u.pathname}${u.search}`;
  const name = u.hostname.replace(/^\[|\]$/g, '');
  const secure = target.scheme === 'https' && isIP(name) === 0;
  return { url, options: { headers: { host: u.host }, ...(secure ? { servername: name } : {}) } };
}

/** GET of the document: one deadline for all of it, at most MAX_DISCOVERY_BYTES, no redirects. */
function fetchDocument(url: string, domain: string, at: string, opts: DiscoveryOptions): Promise<string> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_DISCOVERY_TIMEOUT_MS;
  const u = new URL(url);
  const https = u.protocol === 'https:';
  return new Promise<string>((resolve, reject) => {
    let settled = false;
    const finish = (err: PmbError | undefined, body?: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err) {
        req.destroy();
        reject(err);
      } else resolve(body ?? '');
    };
    const req = (https ? httpsRequest : httpRequest)(
      u,
      {
        method: 'GET',
        // As curl --resolve: the request (and with https the certificate check) is for the domain.
        headers: { host: domain, accept: 'application/json' },
        ...(https ? { servername: domain, ...(opts.ca ? { ca: opts.ca } : {}) } : {}),
      },
      (res: IncomingMessage) => {
        if (res.statusCode !== 200) {
          res.resume();
          finish(
            new PmbError(
              'bad_server',
              `server at ${at} answered HTTP ${res.statusCode} for ${WELL_KNOWN_PATH}`,
            ),
          );
          return;
        }
        const tooLarge = () =>
          new PmbError(
            'bad_server',
            `server at ${at} sent a discovery document over ${MAX_DISCOVERY_BYTES} bytes`,
          );
        if (Number(res.headers['content-length'] ?? 0) > MAX_DISCOVERY_BYTES) {
          finish(tooLarge());
          return;
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_DISCOVERY_BYTES) finish(tooLarge());
          else chunks.push(chunk);
        });
        res.on('end', () => finish(undefined, Buffer.concat(chunks).toString('utf8')));
        res.on('error', (err) => finish(unreachable(at, err)));
      },
    );
    const timer = setTimeout(
      () => finish(new PmbError('timeout', `server at ${at} did not answer within ${timeoutMs} ms`)),
      timeoutMs,
    );
    req.on('error', (err) => finish(unreachable(at, err)));
    req.end();
  });
}

function unreachable(at: string, err: Error): PmbError {
  const code = (err as NodeJS.ErrnoException).code;
  const why = code ? `${code}: ${err.message}` : err.message;
  return new PmbError('unreachable', `cannot reach the server at ${at} (${why})`, { cause: err });
}

/**
 * discoverServer with a cache: a checked answer is kept for ttlMs (10 min), concurrent lookups of one domain
 * share one request, failures are not kept. The server owns one (ctx.discovery).
 */
export class Discovery {
  readonly #opts: DiscoveryOptions;
  readonly #ttlMs: number;
  readonly #now: () => number;
  readonly #cache = new Map<string, { info: ServerInfo; expires: number }>();
  readonly #pending = new Map<string, Promise<ServerInfo>>();

  constructor(opts: DiscoveryOptions & { ttlMs?: number }) {
    // Checked once here, so a bad entry fails at start rather than at the first lookup.
    for (const [d, target] of Object.entries(opts.resolve)) {
      try {
        resolveDomain(d);
        parseResolveTarget(target);
      } catch (err) {
        if (err instanceof ResolveError)
          throw new PmbError('bad_request', `resolve entry ${d}: ${err.message}`);
        throw err;
      }
    }
    this.#opts = { ...opts, resolve: { ...opts.resolve } };
    this.#ttlMs = opts.ttlMs ?? DISCOVERY_TTL_MS;
    this.#now = opts.now ?? Date.now;
  }

  /** The resolve map in use (domain -> target). */
  get resolve(): Readonly<Record<string, string>> {
    return this.#opts.resolve;
  }

  /** The checked server info of `domain`, from the cache while it is fresh. */
  async lookup(domain: string): Promise<ServerInfo> {
    const d = domain.trim().toLowerCase();
    const hit = this.#cache.get(d);
    if (hit && hit.expires > this.#now()) return hit.info;
    const running = this.#pending.get(d);
    if (running) return running;
    const p = discoverServer(d, this.#opts)
      .then((info) => {
        if (this.#cache.size >= MAX_CACHED) this.#cache.clear();
        this.#cache.set(d, { info, expires: this.#now() + this.#ttlMs });
        return info;
      })
      .finally(() => this.#pending.delete(d));
    this.#pending.set(d, p);
    return p;
  }

  /** Drops what is known of one domain (or of all), so the next lookup asks again. */
  forget(domain?: string): void {
    if (domain === undefined) this.#cache.clear();
    else this.#cache.delete(domain.trim().toLowerCase());
  }
}
