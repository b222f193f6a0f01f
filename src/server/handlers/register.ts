import {
  checkChainLink,
  cosignRecord,
  decodeRecord,
  readPublicIdentity,
  verifyRecord,
} from '../../crypto/index.js';
import { PmbError } from '../../protocol/errors.js';
import { Register } from '../../protocol/frames.js';
import { BINDING_TTL_MS, bindingBody } from '../../protocol/records.js';
import { NICKNAME_RE } from '../../protocol/schemas.js';
import { encodeSigs } from '../../store/index.js';
import type { Router } from '../router.js';

/** Clock skew tolerated on a binding's expiry. */
const SKEW_MS = 10 * 60 * 1000;

export function register(router: Router): void {
  router.handle(Register, async (params, _session, ctx) => {
    const { config, store } = ctx;
    if (config.registration === 'closed') throw new PmbError('registration_closed');
    if (config.registration === 'invite' && !params.invite) throw new PmbError('invite_required');

    const key = await readPublicIdentity(params.publicKey);
    const payload = decodeRecord(params.binding);
    if (payload.kind !== 'binding') throw new PmbError('bad_record', 'Expected a binding record');
    if (payload.subject !== key.fingerprint)
      throw new PmbError('bad_record', 'The binding is for another key');
    const nick = typeof payload.body.nick === 'string' ? payload.body.nick : '';
    if (!NICKNAME_RE.test(nick)) throw new PmbError('bad_nickname');
    const body = bindingBody.safeParse(payload.body);
    if (!body.success) throw new PmbError('bad_record', 'The binding body is malformed');
    if (body.data.domain !== config.domain) {
      throw new PmbError('wrong_domain', `This server registers names @${config.domain} only`);
    }
    if (body.data.registrar !== ctx.identity.fingerprint) {
      throw new PmbError('bad_record', 'The binding names another registrar');
    }
    const now = ctx.now();
    if (payload.expires === undefined || payload.expires > now + BINDING_TTL_MS + SKEW_MS) {
      throw new PmbError('bad_record', `A binding must expire within ${BINDING_TTL_MS / 86_400_000} days`);
    }
    const verified = await verifyRecord(params.binding, { subject: key }, { now });
    const cosigned = await cosignRecord(ctx.identity, params.binding);

    // Everything that depends on the database state is decided inside the write, so two registrations of
    // one nickname in the same batch cannot both win.
    const fresh = await store.writes.submit((): boolean => {
      const owner = store.identities.bindingOwner(body.data.nick, body.data.domain, now);
      if (owner !== undefined && owner !== key.fingerprint) throw new PmbError('nickname_taken');
      const link = checkChainLink(store.identities.head(key.fingerprint), payload);
      if (link === 'stale' && owner === key.fingerprint) return false; // a retry of a registration that went through
      if (link !== 'next') throw new PmbError(link === 'fork' ? 'record_fork' : 'stale_record');
      if (
        config.registration === 'invite' &&
        !store.accounts.useInvite(params.invite ?? '', key.fingerprint, now)
      ) {
        throw new PmbError('invite_required', 'The invite code is unknown, used or expired');
      }
      store.identities.putIdentity(key.fingerprint, key.publicKeyBytes, now);
      store.identities.appendRecord({
        subject: key.fingerprint,
        seq: payload.seq,
        kind: payload.kind,
        hash: verified.hash,
        payload: cosigned.payload,
        sigs: encodeSigs(cosigned.sigs),
        expires: payload.expires ?? null,
        received: now,
      });
      store.identities.setBinding(
        body.data.nick,
        body.data.domain,
        key.fingerprint,
        payload.seq,
        payload.expires ?? null,
      );
      store.accounts.create(key.fingerprint, now);
      return true;
    });
    // The binding entered the feed with the write: pass it on to the linked servers.
    if (fresh) ctx.gossip?.announce(cosigned, key.publicKeyBytes);
    ctx.log.info({ nick: body.data.nick, fingerprint: key.fingerprint }, 'registered');
    return { binding: cosigned };
  });
}
