import { pinnedServerItems } from '../../federation/server-records.js';
import { PmbError } from '../../protocol/errors.js';
import { Lookup } from '../../protocol/frames.js';
import { fingerprint as fingerprintSchema, parseAddress } from '../../protocol/schemas.js';
import { storedToSigned } from '../../store/index.js';
import type { Router } from '../router.js';

export function register(router: Router): void {
  router.handle(Lookup, async (params, session, ctx) => {
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
      if (fp === undefined && addr.domain !== ctx.config.domain && session.authed) {
        // A name of a domain never heard of, or not yet: link to it (which pulls its directory) and retry.
        // Only for logged-in users, so strangers cannot make this server dial arbitrary domains.
        try {
          await ctx.links.connect(addr.domain);
          await ctx.gossip.refresh(addr.domain);
        } catch (err) {
          ctx.log.info({ domain: addr.domain, err: (err as Error).message }, 'lookup: domain unreachable');
        }
        fp = store.identities.bindingOwner(addr.nick, addr.domain, ctx.now());
      }
    }
    const publicKey = fp === undefined ? undefined : store.identities.publicKey(fp);
    if (fp === undefined || publicKey === undefined)
      throw new PmbError('not_found', `Nobody is known as ${query}`);
    const records = store.identities.records(fp);
    // The server responsible: the newest location record's, else the registrar's (the binding's domain).
    const server = store.identities.location(fp) ?? boundDomain ?? ctx.config.domain;
    const homes = store.identities.homes(fp);
    return {
      fingerprint: fp,
      publicKey,
      records: records.map(storedToSigned),
      server,
      servers: pinnedServerItems(store, homes.includes(server) ? homes : [...homes, server]).slice(-16),
    };
  });
}
