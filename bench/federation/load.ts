/**
 * Pairs for bench:federation: a sender on one server and a recipient on the same or another server, driven
 * by bench/relay's `drive`. Each pair also keeps the ids it got `send.ok` for and the ids its recipient
 * received, so the bench can say how many acknowledged messages never arrived (lost) or arrived twice.
 */
import { randomBytes } from 'node:crypto';
import type { PmbClient } from '../../src/client/index.js';
import { PmbError } from '../../src/protocol/errors.js';
import type { Envelope } from '../../src/protocol/frames.js';
import { type Pair, pmbUser } from '../relay/load.js';

export interface CountedPair extends Pair {
  sender: PmbClient;
  recipient: PmbClient;
  /** Ids the sender's server acknowledged (send.ok: on disk there). */
  acked: Set<string>;
  /** Ids the recipient received (first time). */
  delivered: Set<string>;
  /** Deliveries of an id already received. */
  duplicates: number;
  /** performance.now() of the last send.ok. */
  lastAckAt: number;
  close(): void;
}

const tag = randomBytes(4).toString('hex');
let counter = 0;
const nextId = () => `${tag}-f${(counter++).toString(36)}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Look up `fp` on the sender's server until its directory has it (gossip from the recipient's server),
 * for at most `maxMs`.
 */
export async function lookupWhenKnown(client: PmbClient, fp: string, maxMs = 30_000) {
  const until = performance.now() + maxMs;
  for (;;) {
    try {
      return await client.lookup(fp);
    } catch (err) {
      if (!(err instanceof PmbError && err.code === 'not_found') || performance.now() > until) throw err;
      await sleep(20);
    }
  }
}

/**
 * A sender registered on `senderUrl` and a recipient on `recipientUrl` (the same server, or another one of
 * the federation), with `bodies` real OpenPGP messages sealed before any timing; each send reuses one with
 * a fresh envelope id, and the recipient counts raw deliver frames (as in bench:relay).
 */
export async function countedPair(
  senderUrl: string,
  recipientUrl: string,
  nick: string,
  bodies: number,
): Promise<CountedPair> {
  const sentAt = new Map<string, number>();
  const pair = {
    acked: new Set<string>(),
    delivered: new Set<string>(),
    duplicates: 0,
    lastAckAt: 0,
  } as CountedPair;
  pair.onDelivered = () => {};
  const recipient = await pmbUser(recipientUrl, `${nick}r`, (f) => {
    const id = f.envelope.id;
    if (pair.delivered.has(id)) {
      pair.duplicates++;
      return;
    }
    pair.delivered.add(id);
    const t = sentAt.get(id);
    if (t === undefined) return;
    sentAt.delete(id);
    pair.onDelivered(performance.now() - t);
  });
  const sender = await pmbUser(senderUrl, `${nick}s`);
  const contact = await lookupWhenKnown(sender, recipient.identity.fingerprint);
  const sealed: Envelope[] = [];
  for (let k = 0; k < bodies; k++)
    sealed.push(await sender.seal([contact.key], `${nick}.${k} wherefore art thou`));
  let i = 0;
  return Object.assign(pair, {
    sender,
    recipient,
    async send() {
      const envelope = { ...(sealed[i++ % sealed.length] as Envelope), id: nextId() };
      sentAt.set(envelope.id, performance.now());
      await sender.sendEnvelope(envelope);
      pair.acked.add(envelope.id);
      pair.lastAckAt = performance.now();
    },
    close() {
      sender.close();
      recipient.close();
    },
  });
}

/** Acknowledged but not received, and received twice, over a set of pairs. */
export function losses(pairs: CountedPair[]): {
  acked: number;
  delivered: number;
  lost: number;
  duplicated: number;
} {
  let acked = 0;
  let delivered = 0;
  let lost = 0;
  let duplicated = 0;
  for (const p of pairs) {
    acked += p.acked.size;
    delivered += p.delivered.size;
    for (const id of p.acked) if (!p.delivered.has(id)) lost++;
    duplicated += p.duplicates;
  }
  return { acked, delivered, lost, duplicated };
}
