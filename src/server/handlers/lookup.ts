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
    if (fingerprintSchema.safeParse(query).success) {
      fp = query;
    } else {
      const addr = parseAddress(query);
      if (!addr) throw new PmbError('bad_request', 'Look up nick@domain or a 40-hex-digit fingerprint');
      fp = store.identities.bindingOwner(addr.nick, addr.domain, ctx.now());
    }
    const publicKey = fp === undefined ? undefined : store.identities.publicKey(fp);
    if (fp === undefined || publicKey === undefined)
      throw new PmbError('not_found', `Nobody is known as ${query}`);
    return {
      fingerprint: fp,
      publicKey,
      records: store.identities.records(fp).map(storedToSigned),
      // Federation (location records) comes later; today every known account lives here.
      server: ctx.config.domain,
    };
  });
}
