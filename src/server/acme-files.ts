import { join } from 'node:path';

/** Where an ACME-managed server keeps its account key, certificate (chain) and key: `<dataDir>/acme/`. */
export function acmeFiles(dataDir: string): { dir: string; cert: string; key: string; account: string } {
  const dir = join(dataDir, 'acme');
  return {
    dir,
    cert: join(dir, 'cert.pem'),
    key: join(dir, 'key.pem'),
    account: join(dir, 'account.key'),
  };
}
