import type { Limits } from '../protocol/limits.js';

/**
 * Logins waiting for their answer, counted server-wide and per client address, so that a few addresses
 * holding many half-finished logins cannot lock everybody else out.
 */
export class PendingLogins {
  #total = 0;
  readonly #byAddress = new Map<string, number>();

  constructor(private readonly limits: Pick<Limits, 'pendingLogins' | 'pendingLoginsPerAddress'>) {}

  get total(): number {
    return this.#total;
  }

  /** Count one more pending login for the address; false when a limit is reached. */
  take(address: string): boolean {
    const mine = this.#byAddress.get(address) ?? 0;
    if (this.#total >= this.limits.pendingLogins || mine >= this.limits.pendingLoginsPerAddress) return false;
    this.#total++;
    this.#byAddress.set(address, mine + 1);
    return true;
  }

  release(address: string): void {
    const mine = this.#byAddress.get(address) ?? 0;
    if (mine <= 0) return;
    this.#total--;
    if (mine === 1) this.#byAddress.delete(address);
    else this.#byAddress.set(address, mine - 1);
  }
}
