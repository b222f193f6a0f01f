import { readFile } from 'node:fs/promises';
import {
  generateIdentity,
  type Identity,
  inspectSecretKey as inspectKey,
  unlockIdentity,
} from '../crypto/index.js';
import { CliError } from './errors.js';
import { isNotFound } from './files.js';
import { noIdentity, type Profile } from './profile.js';

export interface PassphraseSource {
  passphraseFile?: string;
}

/** --passphrase-file (its first line) wins over $PMB_PASSPHRASE; neither means no passphrase. */
export async function readPassphrase(
  opts: PassphraseSource,
  env: Record<string, string | undefined>,
): Promise<string | undefined> {
  if (opts.passphraseFile) {
    let text: string;
    try {
      text = await readFile(opts.passphraseFile, 'utf8');
    } catch (err) {
      if (isNotFound(err)) throw new CliError('usage', `No passphrase file ${opts.passphraseFile}`, 2);
      throw err;
    }
    const first = text.split(/\r?\n/)[0] ?? '';
    if (!first) throw new CliError('usage', `The passphrase file ${opts.passphraseFile} is empty`, 2);
    return first;
  }
  return env.PMB_PASSPHRASE || undefined;
}

const NEED_PASSPHRASE =
  'The secret key is protected by a passphrase: set PMB_PASSPHRASE or pass --passphrase-file FILE';

/** Facts about a secret key that need no passphrase, with a hint on how to make one. */
export async function inspectSecretKey(input: string | Uint8Array): ReturnType<typeof inspectKey> {
  try {
    return await inspectKey(input);
  } catch {
    throw new CliError(
      'bad_key',
      'This is not an OpenPGP secret key (use "pmb id export --secret" to make one)',
    );
  }
}

/** Reads and checks a secret key, asking for the passphrase only when it is protected. */
export async function unlock(input: string | Uint8Array, passphrase: string | undefined): Promise<Identity> {
  const info = await inspectSecretKey(input);
  if (info.locked && !passphrase) throw new CliError('passphrase_required', NEED_PASSPHRASE);
  return unlockIdentity(input, info.locked ? passphrase : undefined);
}

export async function loadIdentity(profile: Profile, passphrase: string | undefined): Promise<Identity> {
  const armored = await profile.readSecretKey();
  if (armored === undefined) throw noIdentity(profile);
  const identity = await unlock(armored, passphrase);
  if (profile.data.fingerprint !== identity.fingerprint) {
    await profile.update((d) => {
      d.fingerprint = identity.fingerprint;
    });
  }
  return identity;
}

/** A fresh key pair in the profile (protected when a passphrase is given) and, if needed, a device id. */
export async function createIdentity(profile: Profile, passphrase: string | undefined): Promise<Identity> {
  if ((await profile.readSecretKey()) !== undefined) {
    throw new CliError(
      'identity_exists',
      `${profile.dir} already has an identity (${profile.data.fingerprint ?? 'see pmb id show'}); use another --profile`,
    );
  }
  const { identity, secretKeyArmored } = await generateIdentity(passphrase ? { passphrase } : {});
  await profile.writeSecretKey(secretKeyArmored);
  await profile.update((d) => {
    d.fingerprint = identity.fingerprint;
  });
  await profile.device();
  return identity;
}
