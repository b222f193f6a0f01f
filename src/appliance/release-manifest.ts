import { z } from 'zod';
import {
  type Identity,
  type PublicIdentity,
  readPublicIdentity,
  signDetachedArmored,
  type Verified,
  verifyDetachedSignature,
} from '../crypto/index.js';
import { ApplianceError } from './task-error.js';

/**
 * A release is a directory (or the same files at an HTTPS URL): manifest.json, its armored detached
 * signature manifest.json.sig by the release key, and the binaries it lists with their SHA-256 and size.
 * Only the manifest is signed; the hashes in it vouch for the binaries.
 */
export const MANIFEST_FILE = 'manifest.json';
export const SIGNATURE_FILE = 'manifest.json.sig';
/** install.sh checks downloads against this `sha256sum` listing; release writes it too. */
export const SUMS_FILE = 'SHA256SUMS';
export const PLATFORMS = ['linux-x64', 'linux-arm64'] as const;
export type Platform = (typeof PLATFORMS)[number];
export const MAX_MANIFEST_BYTES = 64 * 1024;
/** Largest binary a manifest may announce (the single executable is ~100 MB). */
export const MAX_BINARY_BYTES = 1024 * 1024 * 1024;

const VERSION_RE = /^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?$/;

const binaryEntry = z
  .object({
    /** A file name next to the manifest (no directories). */
    file: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/)
      .optional(),
    /** An absolute https:// URL, for binaries kept elsewhere. */
    url: z
      .string()
      .regex(/^https:\/\//)
      .optional(),
    sha256: z.string().regex(/^[0-9a-f]{64}$/),
    size: z.number().int().positive().max(MAX_BINARY_BYTES),
  })
  .refine((b) => (b.file === undefined) !== (b.url === undefined), 'give exactly one of file and url');

export const releaseManifest = z.object({
  format: z.literal('pmb-release').optional(),
  version: z.string().regex(VERSION_RE, 'a version like 1.2.3'),
  date: z.string(),
  binaries: z.partialRecord(z.enum(PLATFORMS), binaryEntry),
  notes: z
    .string()
    .max(16 * 1024)
    .optional(),
});
export type ReleaseManifest = z.infer<typeof releaseManifest>;
export type BinaryEntry = z.infer<typeof binaryEntry>;

/** The release key built into the program, parsed. */
export async function releaseKeys(armored: readonly string[]): Promise<PublicIdentity[]> {
  return Promise.all(armored.map((k) => readPublicIdentity(k)));
}

/** Signs manifest bytes (exactly as written to manifest.json) with the release key. */
export function signManifest(key: Identity, manifestBytes: Uint8Array): Promise<string> {
  return signDetachedArmored(key, manifestBytes);
}

/**
 * The manifest, once its signature is checked against `trustedKeys` and its content against the schema.
 * Only this function hands out Verified<ReleaseManifest>, which is what the download and install steps take.
 */
export async function verifyManifest(
  manifestBytes: Uint8Array,
  signature: string,
  trustedKeys: readonly PublicIdentity[],
): Promise<Verified<ReleaseManifest>> {
  if (manifestBytes.length > MAX_MANIFEST_BYTES) {
    throw new ApplianceError('bad_release', 'The release manifest is too large');
  }
  if (trustedKeys.length === 0)
    throw new ApplianceError('bad_release', 'No release key to check the manifest with');
  try {
    await verifyDetachedSignature(manifestBytes, signature, trustedKeys);
  } catch (cause) {
    throw new ApplianceError(
      'bad_signature',
      'The release manifest is not signed by the PMB release key: refusing it (a tampered or foreign release)',
      { cause },
    );
  }
  let parsed: ReleaseManifest;
  try {
    parsed = releaseManifest.parse(
      JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(manifestBytes)),
    );
  } catch (cause) {
    throw new ApplianceError('bad_release', 'The signed release manifest is not a valid manifest', { cause });
  }
  return parsed as Verified<ReleaseManifest>;
}

/** The platform name of this machine, or undefined where PMB ships no binary. */
export function currentPlatform(platform = process.platform, arch = process.arch): Platform | undefined {
  if (platform !== 'linux') return undefined;
  if (arch === 'x64') return 'linux-x64';
  if (arch === 'arm64') return 'linux-arm64';
  return undefined;
}

/** -1, 0 or 1, by semver precedence (a pre-release sorts before its release). */
export function compareVersions(a: string, b: string): number {
  const parse = (v: string) => {
    const [core = '', pre] = v.split(/-(.*)/s, 2);
    return { nums: core.split('.').map((n) => Number(n)), pre };
  };
  const x = parse(a);
  const y = parse(b);
  for (let i = 0; i < 3; i++) {
    const d = (x.nums[i] ?? 0) - (y.nums[i] ?? 0);
    if (d !== 0) return Math.sign(d);
  }
  if (x.pre === y.pre) return 0;
  if (x.pre === undefined) return 1;
  if (y.pre === undefined) return -1;
  const xs = x.pre.split('.');
  const ys = y.pre.split('.');
  for (let i = 0; i < Math.max(xs.length, ys.length); i++) {
    const p = xs[i];
    const q = ys[i];
    if (p === undefined) return -1;
    if (q === undefined) return 1;
    const pn = /^\d+$/.test(p);
    const qn = /^\d+$/.test(q);
    if (pn && qn && Number(p) !== Number(q)) return Math.sign(Number(p) - Number(q));
    if (pn !== qn) return pn ? -1 : 1;
    if (p !== q) return p < q ? -1 : 1;
  }
  return 0;
}

export function isVersion(v: string): boolean {
  return VERSION_RE.test(v);
}
