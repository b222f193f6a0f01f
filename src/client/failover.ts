import { PmbError } from '../protocol/errors.js';
import type { LoginFinish, ResultOf } from '../protocol/frames.js';
import { type ClientOptions, PmbClient } from './client.js';

export type LoginResult = ResultOf<typeof LoginFinish>;

export interface FailoverOptions extends Omit<ClientOptions, 'url' | 'expectServer'> {
  /** The account's server first, then its backup servers, in order. */
  urls: readonly string[];
  /** Pinned key of urls[0]; backups are trusted on first use. */
  expectServer?: string;
  /** Called for every server that could not be reached, before the next is tried. */
  onSkip?: (url: string, err: PmbError) => void;
}

/** Errors that mean "this server cannot be used now", as opposed to "you are refused". */
export function isUnreachable(err: unknown): boolean {
  return err instanceof PmbError && ['unavailable', 'timeout', 'unreachable'].includes(err.code);
}

/** Connect to the first of `urls` that answers. `index` > 0 means a backup server is in use. */
export async function connectFirstReachable(
  opts: FailoverOptions,
): Promise<{ client: PmbClient; url: string; index: number }> {
  const { urls, expectServer, onSkip, ...common } = opts;
  if (urls.length === 0) throw new PmbError('bad_request', 'No server to connect to');
  let last: unknown;
  for (const [index, url] of urls.entries()) {
    try {
      const client = await PmbClient.connect({
        ...common,
        url,
        ...(index === 0 && expectServer ? { expectServer } : {}),
      });
      return { client, url, index };
    } catch (err) {
      if (!isUnreachable(err)) throw err;
      last = err;
      onSkip?.(url, err as PmbError);
    }
  }
  throw last;
}

/**
 * After a login whose answer says the account lives on another server (a device moved it): connect and
 * log in there, finding its endpoint in the server record the lookup of our own identity carries.
 */
export async function followAccount(
  client: PmbClient,
  login: LoginResult,
  opts: Omit<ClientOptions, 'url' | 'expectServer'>,
  beforeLogin?: (home: PmbClient) => void,
): Promise<{ client: PmbClient; url: string; login: LoginResult }> {
  const self = await client.lookup(client.identity.fingerprint);
  if (!self.endpoint) {
    throw new PmbError(
      'moved',
      `The account has moved to ${login.location}, whose address is not known here`,
    );
  }
  const home = await PmbClient.connect({ ...opts, url: self.endpoint });
  try {
    beforeLogin?.(home);
    return { client: home, url: self.endpoint, login: await home.login() };
  } catch (err) {
    home.close();
    throw err;
  }
}

export interface LoggedIn {
  client: PmbClient;
  url: string;
  login: LoginResult;
  /** How the session got where it is: the account's server, a backup (a move), or its new home. */
  via: 'primary' | 'backup' | 'followed';
}

/**
 * Log in where the account lives (docs/federation.md, "Backup servers and failover"): the account's server
 * if it can be reached, else each backup in order, where logging in is an ordinary move (a new location
 * record every server follows). When the server says the account lives elsewhere now (another device
 * moved it), the session follows it there, unless `move` brings it here.
 */
export async function loginWithFailover(opts: FailoverOptions & { move?: boolean }): Promise<LoggedIn> {
  const first = await connectFirstReachable(opts);
  try {
    const login = await first.client.login({ move: first.index > 0 || !!opts.move });
    if (login.location === first.client.server.domain) {
      return { client: first.client, url: first.url, login, via: first.index > 0 ? 'backup' : 'primary' };
    }
    const { urls: _u, expectServer: _e, onSkip: _s, move: _m, ...common } = opts;
    const home = await followAccount(first.client, login, common);
    first.client.close();
    return { ...home, via: 'followed' };
  } catch (err) {
    first.client.close();
    throw err;
  }
}
