import { DEFAULT_LIMITS, type Limits } from '../protocol/limits.js';

export type RegistrationPolicy = 'open' | 'invite' | 'closed';

/** Everything a server needs, resolved once (defaults <- file <- env <- flags happen in src/cli). */
export interface ServerConfig {
  /** Directory for the database and admin token. */
  dataDir: string;
  /** libsql URL or path; default `<dataDir>/pmb.db`. */
  database?: string;
  /** The domain this server is registrar for (nick@domain). */
  domain: string;
  host: string;
  /** 0 picks a free port. */
  port: number;
  registration: RegistrationPolicy;
  limits: Limits;
  /** The program's version, reported by GET /health (pmb upgrade waits for the new one there). */
  version?: string;
  /** Clock in ms; tests inject one. */
  now?: () => number;
  logLevel?: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'silent';
  /** PEM files: when set the server speaks https:// and wss:// itself. */
  tls?: { cert: string; key: string };
  /**
   * Certificates from an ACME CA (RFC 8555, HTTP-01), kept in `<dataDir>/acme/`; used when tls is unset.
   * The server then speaks https:// and wss:// on port, and plain HTTP on acme.httpPort for challenges.
   */
  acme?: AcmeConfig;
  /** The ws(s):// address clients should use (behind a proxy or a router); default: the listen address. */
  publicUrl?: string;
  /** Take the client address from X-Forwarded-For: only when a local reverse proxy is the only way in. */
  trustProxy?: boolean;
  /**
   * Where other servers' domains are, instead of DNS (tests, offline setups): domain -> `host:port` (http)
   * or `https://host:port`. Checked by src/federation/resolve.ts.
   */
  resolve: Record<string, string>;
  /** Domains of servers to keep a link to from the start (directory replication flows over links). */
  peers?: string[];
}

export function serverConfig(partial: Partial<ServerConfig> & Pick<ServerConfig, 'dataDir'>): ServerConfig {
  return {
    domain: 'localhost',
    host: '127.0.0.1',
    port: 0,
    registration: 'invite',
    ...partial,
    resolve: { ...partial.resolve },
    limits: { ...DEFAULT_LIMITS, ...partial.limits },
  };
}

export interface AcmeConfig {
  email: string;
  /** The CA's directory URL (Let's Encrypt production by default, resolved in src/appliance/config). */
  directory: string;
  domains: string[];
  httpPort: number;
  /** Extra CA (PEM) trusted for the directory's https: test or private CAs only. */
  caFile?: string;
  /** Tests shorten these; each has a production default in src/server/acme.ts. */
  timing?: Partial<AcmeTiming>;
}

export interface AcmeTiming {
  /** Renew when the certificate expires within this long (30 days). */
  renewBeforeMs: number;
  /** How often the background renewal looks at the certificate (12 h). */
  checkEveryMs: number;
  /** How long start() waits for a first certificate before going on without the TLS port (2 min). */
  startWaitMs: number;
  /** Retry backoff after a failed issuance: doubling from min to max (1 min .. 6 h). */
  retryMinMs: number;
  retryMaxMs: number;
  /** acme-client's own retries of one request (connection errors, 429, 5xx); default 5. */
  httpRetries: number;
  /** The clock renewal decisions use (tests move it forward). */
  now: () => number;
}
