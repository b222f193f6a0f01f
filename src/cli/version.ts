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

// The single-file executable has no package.json beside it: its build defines PMB_BUILD_VERSION
// (scripts/build-binary.ts). Under Node the name is undeclared, and typeof of it is 'undefined'.
declare const PMB_BUILD_VERSION: string | undefined;
export const VERSION = typeof PMB_BUILD_VERSION === 'string' ? PMB_BUILD_VERSION : readVersion();
