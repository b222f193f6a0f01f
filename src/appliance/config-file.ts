import { existsSync } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'smol-toml';
import { DATA_DIR_CONFIG, readConfigFile } from './config.js';

const HEADER = `# PMB settings chosen at first-run setup (pmb init or the /setup page).
# Edit freely: this file wins over /etc/pmb/pmb.toml (or --config), PMB_* variables and flags win over it.
# \`pmb config show\` prints what is in effect and where each value comes from. Comments here are not kept.
`;

/** Sets keys in `<dataDir>/pmb.toml`, keeping the others; written whole to a temp file, then renamed. */
export async function updateDataDirConfig(
  dataDir: string,
  values: Record<string, string | number | boolean>,
) {
  const file = join(dataDir, DATA_DIR_CONFIG);
  const doc: Record<string, unknown> = {};
  if (existsSync(file)) {
    for (const [key, value] of readConfigFile(file).values) setDotted(doc, key, value);
  }
  for (const [key, value] of Object.entries(values)) setDotted(doc, key, value);
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const tmp = `${file}.tmp-${process.pid}`;
  await writeFile(tmp, `${HEADER}\n${stringify(doc)}\n`, { mode: 0o644 });
  await rename(tmp, file);
  return file;
}

function setDotted(doc: Record<string, unknown>, key: string, value: unknown): void {
  const parts = key.split('.');
  let table = doc;
  for (const p of parts.slice(0, -1)) {
    table[p] ??= {};
    table = table[p] as Record<string, unknown>;
  }
  table[parts.at(-1)!] = value;
}
