import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { DOMAIN_RE } from '../protocol/schemas.js';
import type { RegistrationPolicy } from '../server/config.js';
import { usageError } from './errors.js';
import { defaultDataDir } from './paths.js';

export const DEFAULT_PORT = 8447;
export const DEFAULT_HOST = '127.0.0.1';
export const REGISTRATION_POLICIES = ['open', 'invite', 'closed'] as const;
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface ServeFlags {
  dataDir?: string;
  domain?: string;
  host?: string;
  port?: string;
  registration?: string;
  logLevel?: string;
}

export interface ServeSettings {
  dataDir: string;
  domain: string;
  host: string;
  port: number;
  registration: RegistrationPolicy;
  logLevel: LogLevel;
}

/** `<hostname>.local`, lowercased, reduced to what a domain may hold. */
export function defaultDomain(host = hostname()): string {
  const label = (host.split('.')[0] ?? '')
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 63)
    .replace(/-+$/, '');
  return `${label || 'pmb'}.local`;
}

/** Defaults <- environment (PMB_*) <- flags, validated with messages that name the source. */
export function resolveServeSettings(
  flags: ServeFlags,
  env: Record<string, string | undefined>,
  host = hostname(),
): ServeSettings {
  const pick = (flag: string | undefined, envName: string): { value: string; from: string } | undefined => {
    if (flag !== undefined) return { value: flag, from: `--${kebab(envName)}` };
    const e = env[`PMB_${envName.toUpperCase()}`];
    if (e !== undefined && e !== '') return { value: e, from: `PMB_${envName.toUpperCase()}` };
    return undefined;
  };

  const portIn = pick(flags.port, 'port');
  let port = DEFAULT_PORT;
  if (portIn) {
    const n = Number(portIn.value);
    if (!/^\d+$/.test(portIn.value.trim()) || n > 65535) {
      throw usageError(`${portIn.from}: "${portIn.value}" is not a port (0-65535; 0 picks a free one)`);
    }
    port = n;
  }

  const regIn = pick(flags.registration, 'registration');
  const registration = (regIn?.value.toLowerCase() ?? 'invite') as RegistrationPolicy;
  if (!REGISTRATION_POLICIES.includes(registration)) {
    throw usageError(`${regIn?.from}: "${regIn?.value}" is not one of ${REGISTRATION_POLICIES.join(', ')}`);
  }

  const logIn = pick(flags.logLevel, 'log_level');
  const logLevel = (logIn?.value.toLowerCase() ?? 'info') as LogLevel;
  if (!LOG_LEVELS.includes(logLevel)) {
    throw usageError(`${logIn?.from}: "${logIn?.value}" is not one of ${LOG_LEVELS.join(', ')}`);
  }

  const domainIn = pick(flags.domain, 'domain');
  const domain = domainIn ? domainIn.value.trim().toLowerCase() : defaultDomain(host);
  if (!DOMAIN_RE.test(domain)) {
    throw usageError(
      `${domainIn?.from ?? 'hostname'}: "${domain}" is not a domain name (like home.example.org)`,
    );
  }

  const hostIn = pick(flags.host, 'host');
  const listenHost = hostIn?.value.trim() || DEFAULT_HOST;
  if (/[\s/]/.test(listenHost))
    throw usageError(`${hostIn?.from}: "${listenHost}" is not a host name or address`);

  const dataDir = resolve(flags.dataDir ?? defaultDataDir(env));
  return { dataDir, domain, host: listenHost, port, registration, logLevel };
}

function kebab(name: string): string {
  return name.replace(/_/g, '-');
}
