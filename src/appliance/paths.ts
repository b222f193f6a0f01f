import { homedir } from 'node:os';
import { join } from 'node:path';

type Env = Record<string, string | undefined>;

/** $PMB_DATA_DIR, else $XDG_DATA_HOME/pmb, else ~/.local/share/pmb. */
export function defaultDataDir(env: Env): string {
  if (env.PMB_DATA_DIR) return env.PMB_DATA_DIR;
  return join(env.XDG_DATA_HOME || join(homedir(), '.local', 'share'), 'pmb');
}
