import { PmbError } from '../../protocol/errors.js';
import { Lookup } from '../../protocol/frames.js';
import { fingerprint as fingerprintSchema, parseAddress } from '../../protocol/schemas.js';
import { storedToSigned } from '../../store/index.js';
import type { Router } from '../router.js';

export function register(router: Router): void {
  router.handle(Lookup, (params, _session, ctx) => {
    const { store } = ctx;
    const query = params.query.trim().toLowerCase();
    let fp: string | undefined;
    let boundDomain: string | undefined;
    if (fingerprintSchema.safeParse(query).success) {
      fp = query;
    } else {
      const addr = parseAddress(query);
      if (!addr) throw new PmbError('bad_request', 'Look up nick@domain or a 40-hex-digit fingerprint');
      fp = store.identities.bindingOwner(addr.nick, addr.domain, ctx.now());
      boundDomain = addr.domain;
    }
    const publicKey = fp === undefined ? undefined : store.identities.publicKey(fp);
    if (fp === undefined || publicKey === undefined)
      throw new PmbError('not_found', `Nobody is known as ${query}`);
    return {
      fingerprint: fp,
      publicKey,
      records: store.identities.records(fp).map(storedToSigned),
      // Until location records exist, the server responsible is the one that registered the name: the
      // binding's domain (looked up by fingerprint, the domain of the identity's newest binding).
      server: boundDomain ?? store.identities.bindingDomain(fp) ?? ctx.config.domain,
    };
  });
}
