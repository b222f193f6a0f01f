import { z } from 'zod';
import { domain, fingerprint } from './schemas.js';

/** Where a server for `<domain>` publishes its discovery document: `https://<domain>/.well-known/pmb`. */
export const WELL_KNOWN_PATH = '/.well-known/pmb';

/** Largest discovery document a peer reads (bytes of the HTTP body). */
export const MAX_DISCOVERY_BYTES = 64 * 1024;

/** Largest armored server key in the document (the key rules of section 7 cap the binary key at 8 KiB). */
const MAX_ARMORED_KEY_CHARS = 16 * 1024;

const wsUrl = z
  .string()
  .max(2048)
  .regex(/^wss?:\/\/[^\s/?#]+(\/[^\s]*)?$/, 'a ws:// or wss:// URL');

/**
 * The discovery document (`GET /.well-known/pmb`, JSON). Unknown fields are ignored, so later versions can
 * add some; `onion` and `server2server` are optional and not published by this version of the server.
 */
export const discoveryDocument = z.object({
  /** Protocol versions the server speaks, newest first. */
  versions: z.array(z.number().int().positive()).min(1).max(32),
  /** The domain this server is registrar of. */
  domain,
  /** The fingerprint of the server key. */
  fingerprint,
  /** The server key, ASCII-armored OpenPGP; its fingerprint must be `fingerprint`. */
  publicKey: z.string().min(1).max(MAX_ARMORED_KEY_CHARS),
  /** The WebSocket URL clients connect to. */
  websocket: wsUrl,
  subprotocols: z.array(z.string().max(64)).max(16),
  registration: z.enum(['open', 'invite', 'closed']),
  /** A Tor onion service address (`<56 base32 characters>.onion`), for later. */
  onion: z.string().max(255).optional(),
  /** The WebSocket URL other servers link to (server-to-server); for later. */
  server2server: wsUrl.optional(),
});

export type DiscoveryDocument = z.infer<typeof discoveryDocument>;
