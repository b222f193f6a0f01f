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
  /** The ws(s):// address clients should use (behind a proxy or a router); default: the listen address. */
  publicUrl?: string;
  /** Take the client address from X-Forwarded-For: only when a local reverse proxy is the only way in. */
  trustProxy?: boolean;
}

export function serverConfig(partial: Partial<ServerConfig> & Pick<ServerConfig, 'dataDir'>): ServerConfig {
  return {
    domain: 'localhost',
    host: '127.0.0.1',
    port: 0,
    registration: 'invite',
    ...partial,
    limits: { ...DEFAULT_LIMITS, ...partial.limits },
  };
}
