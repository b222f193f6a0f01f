import { fromUtf8, utf8 } from '../protocol/bytes.js';
import type { Store } from '../store/index.js';

const KEY = 'server.domain';

/** Thrown when the configured domain differs from the one this server's accounts were registered under. */
export class DomainLockedError extends Error {
  override readonly name = 'DomainLockedError';
  readonly code = 'domain_locked';
  constructor(
    readonly registered: string,
    readonly requested: string,
  ) {
    super(
      `This server's accounts are registered @${registered}; it cannot become ${requested} ` +
        `(their names would no longer be theirs). Set domain = "${registered}" again.`,
    );
  }
}

/** The domain accounts were registered under, if the server has run before. */
export function registeredDomain(store: Store): string | undefined {
  const v = store.meta.get(KEY);
  return v ? fromUtf8(v) : undefined;
}

/**
 * Records the server's domain. It may change freely while no account exists; once accounts exist their
 * nick@domain bindings are signed for the recorded domain, so another one is refused.
 */
export function lockDomain(store: Store, domain: string): void {
  const before = registeredDomain(store);
  if (before === domain) return;
  if (before !== undefined && store.accounts.count() > 0) throw new DomainLockedError(before, domain);
  store.meta.set(KEY, utf8(domain));
}
