import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

/** A self-signed certificate for `name` and 127.0.0.1, made by the real openssl (.ci/run installs it). */
export function selfSigned(dir: string, name: string, days = 30): { cert: string; key: string } {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      String(days),
      '-subj',
      `/CN=${name}`,
      '-addext',
      `subjectAltName=DNS:${name},IP:127.0.0.1`,
    ],
    { stdio: 'ignore' },
  );
  return { cert, key };
}
