import { readFileSync } from 'node:fs';

/** From package.json (dist/src/cli -> ../../..), so releases need no second place to bump. */
function readVersion(): string {
  for (const rel of ['../../../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === 'pmb' && pkg.version) return pkg.version;
    } catch {
      // not there: try the next layout
    }
  }
  return '0.0.0';
}

export const VERSION = readVersion();
