import { homedir } from 'node:os';
import { join } from 'node:path';

type Env = Record<string, string | undefined>;

/** $PMB_PROFILE, else $XDG_CONFIG_HOME/pmb, else ~/.config/pmb. */
export function defaultProfileDir(env: Env): string {
  if (env.PMB_PROFILE) return env.PMB_PROFILE;
  return join(env.XDG_CONFIG_HOME || join(homedir(), '.config'), 'pmb');
}

/** The server's data dir lives with the rest of the appliance's settings. */
export { defaultDataDir } from '../appliance/paths.js';
