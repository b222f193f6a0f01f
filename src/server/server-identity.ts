import {
  armorSecretKey,
  generateIdentity,
  type Identity,
  inspectSecretKey,
  unlockIdentity,
} from '../crypto/index.js';
import { fromUtf8, utf8 } from '../protocol/bytes.js';
import type { Store } from '../store/index.js';

const KEY = 'server.secret_key';

/** The server's own OpenPGP identity: made on first start, kept in the database (so backups carry it). */
export async function loadServerIdentity(store: Store, domain: string): Promise<Identity> {
  const saved = store.meta.get(KEY);
  if (saved) return unlockIdentity(fromUtf8(saved));
  const { identity } = await generateIdentity({ userId: `pmb server ${domain}` });
  store.meta.set(KEY, utf8(await armorSecretKey(identity)));
  return identity;
}

/** The fingerprint of the server identity a database holds, if any, without unlocking anything else. */
export async function storedServerFingerprint(store: Store): Promise<string | undefined> {
  const saved = store.meta.get(KEY);
  if (!saved) return undefined;
  return (await inspectSecretKey(fromUtf8(saved))).fingerprint;
}
