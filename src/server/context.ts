import type { Identity, PublicIdentity } from '../crypto/index.js';
import type { Discovery } from '../federation/discovery.js';
import type { Gossip } from '../federation/gossip.js';
import type { Links } from '../federation/links.js';
import type { Mail } from '../federation/mail.js';
import type { SignedRecord } from '../protocol/records.js';
import type { Store } from '../store/index.js';
import type { ServerConfig } from './config.js';
import type { Delivery } from './delivery.js';
import type { Logger } from './logger.js';
import type { PendingLogins } from './pending-logins.js';

/** What every handler and module gets: no globals, no singletons. */
export interface Context {
  readonly config: ServerConfig;
  readonly store: Store;
  readonly identity: Identity;
  readonly log: Logger;
  readonly delivery: Delivery;
  now(): number;
  /** Parsed public key of a known identity (cached). */
  publicIdentity(fingerprint: string): Promise<PublicIdentity | undefined>;
  /** Logins waiting for their answer. */
  readonly pendingLogins: PendingLogins;
  /** Other servers by domain: resolve map, else DNS; checked and cached. */
  readonly discovery: Discovery;
  /** This server's current server record (docs/federation.md); set once the server listens. */
  serverRecord: SignedRecord | undefined;
  /** Links to other servers, one per peer domain. */
  readonly links: Links;
  /** Directory replication over the links: announce() passes a newly accepted record on. */
  readonly gossip: Gossip;
  /** Routing by location, the outbox to other servers, accounts moving in and out. */
  readonly mail: Mail;
}
