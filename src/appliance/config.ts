import { existsSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parse as parseToml, TomlError } from 'smol-toml';
import { addResolveEntry, parseResolveEntries, ResolveError } from '../federation/resolve.js';
import { DEFAULT_LIMITS, type Limits } from '../protocol/limits.js';
import { DOMAIN_RE } from '../protocol/schemas.js';
import type { RegistrationPolicy, ServerConfig } from '../server/config.js';
import { defaultDataDir } from './paths.js';

export const DEFAULT_PORT = 8447;
export const DEFAULT_HOST = '127.0.0.1';
/** The file an installer puts the household's settings in. */
export const SYSTEM_CONFIG_FILE = '/etc/pmb/pmb.toml';
/** The data dir's own file: first-run setup and `pmb init` write it; it wins over the main file. */
export const DATA_DIR_CONFIG = 'pmb.toml';
export const REGISTRATION_POLICIES = ['open', 'invite', 'closed'] as const;
/** Let's Encrypt's production directory: the default ACME CA. */
export const LETSENCRYPT_DIRECTORY = 'https://acme-v02.api.letsencrypt.org/directory';
export const DEFAULT_ACME_HTTP_PORT = 80;
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** The effective configuration of a PMB server, resolved once: defaults <- files <- PMB_* <- flags. */
export interface PmbConfig {
  dataDir: string;
  domain: string;
  host: string;
  port: number;
  registration: RegistrationPolicy;
  logLevel: LogLevel;
  /** The address clients (and the first-run page) should use, e.g. wss://pmb.example.org; ws(s) form. */
  publicUrl: string | undefined;
  tls: { cert: string; key: string } | undefined;
  /** Certificates from an ACME CA (Let's Encrypt), enabled by acme.email; unused when tls.cert is set. */
  acme: AcmeSettings | undefined;
  /** Take the client address from X-Forwarded-For (behind nginx/Caddy on the same box). */
  trustProxy: boolean;
  /** Where other servers' domains are, instead of DNS: domain -> `host:port` (http) or `https://host:port`. */
  resolve: Record<string, string>;
  /** Domains of servers to keep a link to from the start. */
  peers: string[];
  limits: Limits;
}

export interface AcmeSettings {
  email: string;
  /** The CA's ACME directory URL. */
  directory: string;
  /** The names on the certificate; default [domain]. */
  domains: string[];
  /** The plain-HTTP port for HTTP-01 challenges (and a redirect to https). */
  httpPort: number;
  /** An extra CA to trust for the directory's own https (test or private CAs only). */
  caFile: string | undefined;
}

/** Command-line flags as commander hands them over (strings, before validation). */
export interface ConfigFlags {
  config?: string;
  dataDir?: string;
  domain?: string;
  host?: string;
  port?: string;
  registration?: string;
  logLevel?: string;
  publicUrl?: string;
  tlsCert?: string;
  tlsKey?: string;
  trustProxy?: boolean;
  /** --resolve, repeatable: `domain=host:port` each. */
  resolve?: string[];
  /** --peer, repeatable: a domain to keep a server link to. */
  peer?: string[];
}

export type ConfigSource = 'default' | 'file' | 'env' | 'flag';

/** Where one setting's value came from: the source kind and the file, variable or flag. */
export interface Origin {
  source: ConfigSource;
  from: string;
}

export interface ResolvedConfig {
  config: PmbConfig;
  /** Keyed by the config-file name of each setting (port, tls.cert, limits.max_depth ...). */
  origins: Record<string, Origin>;
  /** The config files read, in order (later ones win). */
  files: string[];
}

/** A bad setting: the message names where the value came from. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

export interface ResolveOptions {
  flags?: ConfigFlags;
  env?: Record<string, string | undefined>;
  /** The machine's host name (for the default domain); tests pass one. */
  hostname?: string;
  /** Where the system-wide file is looked for; tests point it elsewhere. */
  systemFile?: string;
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

type Parse<T> = (value: unknown, where: string, base: string) => T;

interface Setting<T> {
  /** Name in the config file (dotted for tables). */
  key: string;
  env: string;
  flag?: keyof ConfigFlags;
  parse: Parse<T>;
}

const show = (v: unknown) => (typeof v === 'string' ? JSON.stringify(v) : String(v));

const text =
  (what: string, ok: (s: string) => boolean, normalize = (s: string) => s.trim()): Parse<string> =>
  (v, where) => {
    if (typeof v !== 'string' || !ok(normalize(v)))
      throw new ConfigError(`${where}: ${show(v)} is not ${what}`);
    return normalize(v);
  };

const oneOf =
  <T extends string>(values: readonly T[]): Parse<T> =>
  (v, where) => {
    const s = typeof v === 'string' ? v.trim().toLowerCase() : '';
    if (!values.includes(s as T))
      throw new ConfigError(`${where}: ${show(v)} is not one of ${values.join(', ')}`);
    return s as T;
  };

const integer =
  (min: number, max: number, what: string): Parse<number> =>
  (v, where) => {
    const n = typeof v === 'number' || typeof v === 'bigint' ? Number(v) : Number(String(v).trim());
    const digits = typeof v === 'string' ? /^\s*\d+\s*$/.test(v) : true;
    if (!digits || !Number.isSafeInteger(n) || n < min || n > max) {
      throw new ConfigError(`${where}: ${show(v)} is not ${what}`);
    }
    return n;
  };

const path: Parse<string> = (v, where, base) => {
  if (typeof v !== 'string' || v.trim() === '')
    throw new ConfigError(`${where}: ${show(v)} is not a file path`);
  return resolve(base, v.trim());
};

const bool: Parse<boolean> = (v, where) => {
  if (typeof v === 'boolean') return v;
  const s = typeof v === 'string' ? v.trim().toLowerCase() : '';
  if (['1', 'true', 'yes', 'on'].includes(s)) return true;
  if (['0', 'false', 'no', 'off'].includes(s)) return false;
  throw new ConfigError(`${where}: ${show(v)} is not true or false`);
};

const publicUrl: Parse<string> = (v, where) => {
  const bad = () => new ConfigError(`${where}: ${show(v)} is not a URL like wss://pmb.example.org`);
  if (typeof v !== 'string') throw bad();
  let url: URL;
  try {
    url = new URL(v.trim());
  } catch {
    throw bad();
  }
  const scheme = { 'ws:': 'ws:', 'wss:': 'wss:', 'http:': 'ws:', 'https:': 'wss:' }[url.protocol];
  if (!scheme || !url.hostname || (url.pathname !== '/' && url.pathname !== '')) throw bad();
  url.protocol = scheme;
  return url.toString().replace(/\/$/, '');
};

const email = text('an email address', (s) => /^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(s));

const httpsUrl: Parse<string> = (v, where) => {
  const bad = () => new ConfigError(`${where}: ${show(v)} is not an https:// URL`);
  if (typeof v !== 'string') throw bad();
  try {
    const url = new URL(v.trim());
    if (url.protocol !== 'https:' || !url.hostname) throw bad();
    return url.toString();
  } catch {
    throw bad();
  }
};

/** A TOML array of domain names, or (env) a comma-separated list. */
const domains: Parse<string[]> = (v, where) => {
  const list = typeof v === 'string' ? v.split(',') : v;
  if (!Array.isArray(list) || list.length === 0) {
    throw new ConfigError(`${where}: ${show(v)} is not a list of domain names`);
  }
  return list.map((d) => {
    const s = typeof d === 'string' ? d.trim().toLowerCase() : '';
    if (!DOMAIN_RE.test(s)) throw new ConfigError(`${where}: ${show(d)} is not a domain name`);
    return s;
  });
};

/**
 * The resolve map: a TOML table (`"b.test" = "127.0.0.1:8448"`), or `domain=target` entries: comma-separated
 * in PMB_RESOLVE, one per --resolve flag.
 */
const resolveMap: Parse<Record<string, string>> = (v, where) => {
  try {
    if (typeof v === 'string') return parseResolveEntries([v]);
    if (Array.isArray(v) && v.every((e) => typeof e === 'string')) return parseResolveEntries(v);
    if (v === null || typeof v !== 'object' || Array.isArray(v) || v instanceof Date) {
      throw new ResolveError(`${show(v)} is not a table of "domain" = "host:port"`);
    }
    const map: Record<string, string> = {};
    for (const [d, target] of Object.entries(v)) {
      if (typeof target !== 'string') {
        const nested = target !== null && typeof target === 'object';
        throw new ResolveError(
          nested
            ? `"${d}" is a table: quote domain names that hold dots, like "b.test" = "127.0.0.1:8448"`
            : `${d} = ${show(target)}: the target is a string like "127.0.0.1:8448"`,
        );
      }
      addResolveEntry(map, d, target);
    }
    return map;
  } catch (err) {
    if (err instanceof ResolveError) throw new ConfigError(`${where}: ${err.message}`);
    throw err;
  }
};

const snake = (s: string) => s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

const LIMIT_KEYS = Object.keys(DEFAULT_LIMITS) as (keyof Limits)[];

/** Every setting, once: its file key, environment variable, flag and validation. */
const SETTINGS = {
  data_dir: { key: 'data_dir', env: 'PMB_DATA_DIR', flag: 'dataDir', parse: path },
  domain: {
    key: 'domain',
    env: 'PMB_DOMAIN',
    flag: 'domain',
    parse: text(
      'a domain name (like home.example.org)',
      (s) => DOMAIN_RE.test(s),
      (s) => s.trim().toLowerCase(),
    ),
  },
  host: {
    key: 'host',
    env: 'PMB_HOST',
    flag: 'host',
    parse: text('a host name or address', (s) => s !== '' && !/[\s/]/.test(s)),
  },
  port: {
    key: 'port',
    env: 'PMB_PORT',
    flag: 'port',
    parse: integer(0, 65535, 'a port (0-65535; 0 picks a free one)'),
  },
  registration: {
    key: 'registration',
    env: 'PMB_REGISTRATION',
    flag: 'registration',
    parse: oneOf(REGISTRATION_POLICIES),
  },
  log_level: { key: 'log_level', env: 'PMB_LOG_LEVEL', flag: 'logLevel', parse: oneOf(LOG_LEVELS) },
  public_url: { key: 'public_url', env: 'PMB_PUBLIC_URL', flag: 'publicUrl', parse: publicUrl },
  'tls.cert': { key: 'tls.cert', env: 'PMB_TLS_CERT', flag: 'tlsCert', parse: path },
  'tls.key': { key: 'tls.key', env: 'PMB_TLS_KEY', flag: 'tlsKey', parse: path },
  trust_proxy: { key: 'trust_proxy', env: 'PMB_TRUST_PROXY', flag: 'trustProxy', parse: bool },
  resolve: { key: 'resolve', env: 'PMB_RESOLVE', flag: 'resolve', parse: resolveMap },
  peers: { key: 'peers', env: 'PMB_PEERS', flag: 'peer', parse: domains },
  'acme.email': { key: 'acme.email', env: 'PMB_ACME_EMAIL', parse: email },
  'acme.directory': { key: 'acme.directory', env: 'PMB_ACME_DIRECTORY', parse: httpsUrl },
  'acme.domains': { key: 'acme.domains', env: 'PMB_ACME_DOMAINS', parse: domains },
  'acme.http_port': {
    key: 'acme.http_port',
    env: 'PMB_ACME_HTTP_PORT',
    parse: integer(0, 65535, 'a port (0-65535)'),
  },
  'acme.ca_file': { key: 'acme.ca_file', env: 'PMB_ACME_CA_FILE', parse: path },
} satisfies Record<string, Setting<unknown>>;

const LIMIT_SETTINGS: Setting<number>[] = LIMIT_KEYS.map((k) => ({
  key: `limits.${snake(k)}`,
  env: `PMB_LIMITS_${snake(k).toUpperCase()}`,
  parse: integer(1, Number.MAX_SAFE_INTEGER, 'a positive whole number'),
}));

/** Every key a config file may hold. */
export const CONFIG_KEYS: readonly string[] = [...Object.keys(SETTINGS), ...LIMIT_SETTINGS.map((s) => s.key)];

interface FileLayer {
  path: string;
  values: Map<string, unknown>;
}

/** Reads and checks one TOML config file: flattened to dotted keys; unknown keys are an error. */
export function readConfigFile(file: string): FileLayer {
  let source: string;
  try {
    source = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ConfigError(
      code === 'ENOENT' ? `${file}: no such config file` : `${file}: cannot read it (${code ?? err})`,
    );
  }
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(source) as Record<string, unknown>;
  } catch (err) {
    if (err instanceof TomlError) {
      const first = (err.message.split('\n')[0] ?? '').replace(/^Invalid TOML document: /, '');
      throw new ConfigError(`${file}: line ${err.line}: ${first} (not valid TOML)`);
    }
    throw err;
  }
  const values = new Map<string, unknown>();
  const walk = (table: Record<string, unknown>, prefix: string) => {
    for (const [k, v] of Object.entries(table)) {
      const key = prefix + k;
      const isTable = v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Date);
      if (isTable && CONFIG_KEYS.some((c) => c.startsWith(`${key}.`))) {
        walk(v as Record<string, unknown>, `${key}.`);
      } else if (CONFIG_KEYS.includes(key)) {
        values.set(key, v);
      } else {
        throw new ConfigError(`${file}: unknown key "${key}"${hint(key)}`);
      }
    }
  };
  walk(doc, '');
  return { path: file, values };
}

function hint(key: string): string {
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const c of CONFIG_KEYS) {
    const d = distance(key, c);
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  if (best && bestDistance <= Math.max(2, Math.floor(key.length / 3))) return ` (did you mean "${best}"?)`;
  return ` (known keys: ${CONFIG_KEYS.filter((k) => !k.startsWith('limits.')).join(', ')}, limits.*; see docs/operator.md)`;
}

/** Levenshtein distance, for "did you mean". */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length]!;
}

/**
 * Defaults <- main config file <- `<dataDir>/pmb.toml` <- PMB_* environment <- flags, validated with
 * messages naming the source. The main file is --config, else $PMB_CONFIG, else /etc/pmb/pmb.toml if it
 * exists; the data dir's own file (written by setup and `pmb init`) is read on top of it.
 */
export function resolveConfig(opts: ResolveOptions = {}): ResolvedConfig {
  const flags = opts.flags ?? {};
  const env = opts.env ?? {};
  const systemFile = opts.systemFile ?? SYSTEM_CONFIG_FILE;
  const origins: Record<string, Origin> = {};
  const layers: FileLayer[] = [];

  let mainFile: string | undefined;
  if (flags.config !== undefined) mainFile = resolve(flags.config);
  else if (env.PMB_CONFIG) mainFile = resolve(env.PMB_CONFIG);
  else if (existsSync(systemFile)) mainFile = systemFile;
  if (mainFile) layers.push(readConfigFile(mainFile));

  const label = (o: Origin, key: string) => (o.source === 'file' ? `${key} in ${o.from}` : o.from);

  /** The value of one setting from the layers above the default, or undefined. */
  const pick = <T>(s: Setting<T>, fileLayers: FileLayer[]): { value: T; origin: Origin } | undefined => {
    const flag = s.flag ? flags[s.flag] : undefined;
    if (flag !== undefined && flag !== false) {
      const name = (s.flag as string).replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
      const origin: Origin = { source: 'flag', from: `--${name}` };
      return { value: s.parse(flag, label(origin, s.key), process.cwd()), origin };
    }
    const e = env[s.env];
    if (e !== undefined && e !== '') {
      const origin: Origin = { source: 'env', from: s.env };
      return { value: s.parse(e, label(origin, s.key), process.cwd()), origin };
    }
    for (let i = fileLayers.length - 1; i >= 0; i--) {
      const layer = fileLayers[i]!;
      if (layer.values.has(s.key)) {
        const origin: Origin = { source: 'file', from: layer.path };
        return { value: s.parse(layer.values.get(s.key), label(origin, s.key), dirname(layer.path)), origin };
      }
    }
    return undefined;
  };
  const get = <T>(s: Setting<T>, fallback: T, from = 'built-in'): T => {
    const hit = pick(s, layers);
    origins[s.key] = hit?.origin ?? { source: 'default', from };
    return hit ? hit.value : fallback;
  };

  // The data dir decides where its own pmb.toml is, so it comes from the main file at most.
  const dataDir = get(SETTINGS.data_dir, resolve(defaultDataDir(env)));
  const own = join(dataDir, DATA_DIR_CONFIG);
  if (own !== mainFile && existsSync(own)) {
    const layer = readConfigFile(own);
    if (layer.values.has('data_dir')) {
      throw new ConfigError(`${own}: data_dir cannot be set in the data dir's own config file`);
    }
    layers.push(layer);
  }

  const config: PmbConfig = {
    dataDir,
    domain: get(SETTINGS.domain, defaultDomain(opts.hostname), 'hostname'),
    host: get(SETTINGS.host, DEFAULT_HOST),
    port: get(SETTINGS.port, DEFAULT_PORT),
    registration: get(SETTINGS.registration, 'invite' as RegistrationPolicy),
    logLevel: get(SETTINGS.log_level, 'info' as LogLevel),
    publicUrl: get<string | undefined>(SETTINGS.public_url, undefined),
    tls: undefined,
    acme: undefined,
    trustProxy: get(SETTINGS.trust_proxy, false),
    resolve: get(SETTINGS.resolve, {}),
    peers: get(SETTINGS.peers, [] as string[]),
    limits: { ...DEFAULT_LIMITS },
  };
  const cert = get<string | undefined>(SETTINGS['tls.cert'], undefined);
  const key = get<string | undefined>(SETTINGS['tls.key'], undefined);
  if ((cert === undefined) !== (key === undefined)) {
    const [set, unset] = cert ? ['tls.cert', 'tls.key'] : ['tls.key', 'tls.cert'];
    throw new ConfigError(`${label(origins[set]!, set)}: ${set} is set but ${unset} is not; TLS needs both`);
  }
  if (cert && key) config.tls = { cert, key };
  const acmeEmail = get<string | undefined>(SETTINGS['acme.email'], undefined);
  const acme: AcmeSettings = {
    email: acmeEmail ?? '',
    directory: get(SETTINGS['acme.directory'], LETSENCRYPT_DIRECTORY),
    domains: get(SETTINGS['acme.domains'], [config.domain], 'domain'),
    httpPort: get(SETTINGS['acme.http_port'], DEFAULT_ACME_HTTP_PORT),
    caFile: get<string | undefined>(SETTINGS['acme.ca_file'], undefined),
  };
  if (acmeEmail !== undefined) config.acme = acme;
  LIMIT_KEYS.forEach((k, i) => {
    config.limits[k] = get(LIMIT_SETTINGS[i]!, DEFAULT_LIMITS[k]);
  });
  return { config, origins, files: layers.map((l) => l.path) };
}

/** Every setting at its default, for a data dir whose configuration cannot be read (pmb doctor goes on). */
export function defaultConfig(dataDir: string): PmbConfig {
  return {
    dataDir: resolve(dataDir),
    domain: defaultDomain(),
    host: DEFAULT_HOST,
    port: DEFAULT_PORT,
    registration: 'invite',
    logLevel: 'info',
    publicUrl: undefined,
    tls: undefined,
    acme: undefined,
    trustProxy: false,
    resolve: {},
    peers: [],
    limits: { ...DEFAULT_LIMITS },
  };
}

/** The settings in config-file terms, for `pmb config show`. */
export function configEntries(resolved: ResolvedConfig): { key: string; value: unknown; origin: Origin }[] {
  const { config } = resolved;
  const values: Record<string, unknown> = {
    data_dir: config.dataDir,
    domain: config.domain,
    host: config.host,
    port: config.port,
    registration: config.registration,
    log_level: config.logLevel,
    public_url: config.publicUrl,
    'tls.cert': config.tls?.cert,
    'tls.key': config.tls?.key,
    'acme.email': config.acme?.email,
    'acme.directory': config.acme?.directory,
    'acme.domains': config.acme?.domains,
    'acme.http_port': config.acme?.httpPort,
    'acme.ca_file': config.acme?.caFile,
    trust_proxy: config.trustProxy,
    resolve: config.resolve,
    peers: config.peers,
  };
  for (const k of LIMIT_KEYS) values[`limits.${snake(k)}`] = config.limits[k];
  return CONFIG_KEYS.map((key) => ({
    key,
    value: values[key],
    origin: resolved.origins[key] ?? { source: 'default', from: 'built-in' },
  }));
}

/** What createServer needs from the effective configuration. */
export function toServerConfig(config: PmbConfig): ServerConfig {
  return {
    dataDir: config.dataDir,
    domain: config.domain,
    host: config.host,
    port: config.port,
    registration: config.registration,
    logLevel: config.logLevel,
    limits: { ...config.limits },
    resolve: { ...config.resolve },
    peers: [...config.peers],
    ...(config.tls ? { tls: config.tls } : {}),
    ...(config.acme && !config.tls
      ? {
          acme: {
            email: config.acme.email,
            directory: config.acme.directory,
            domains: [...config.acme.domains],
            httpPort: config.acme.httpPort,
            ...(config.acme.caFile ? { caFile: config.acme.caFile } : {}),
          },
        }
      : {}),
    ...(config.publicUrl ? { publicUrl: config.publicUrl } : {}),
    ...(config.trustProxy ? { trustProxy: true } : {}),
  };
}
