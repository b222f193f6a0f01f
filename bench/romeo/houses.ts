/**
 * Where each character has its account. `--servers 1`: everyone on one server (Verona). `--servers 2`
 * (federated, issue 4): the two houses each on their own server, and everyone else split by a rule.
 */
import type { Play } from './play.js';

export interface Placement {
  /** One domain per server, in order. */
  domains: string[];
  /** Character key -> index into domains. */
  home: Map<string, number>;
  /** Why each character is where it is (printed, and kept in the results). */
  reason: Map<string, string>;
}

/** The households, from the play's list of persons (character keys as parsePlay makes them). */
export const MONTAGUE = ['montague', 'lady montague', 'romeo', 'benvolio', 'abraham', 'balthasar'];
export const CAPULET = [
  'capulet',
  'lady capulet',
  'juliet',
  'tybalt',
  'nurse',
  'peter',
  'sampson',
  'gregory',
  'second capulet',
  // The servingmen of the Capulet scenes (I.2, I.3, I.5, IV.2, IV.4).
  'servant',
  'first servant',
  'second servant',
];

/**
 * `--servers 2`: Montague's household on montague.test, Capulet's on capulet.test. Everyone else (the
 * Prince and his kin Mercutio and Paris, the friars, the Chorus, musicians, watchmen, ...) goes to the
 * house whose members they send the most lines to in this play, ties to Montague. Everyone addresses
 * both houses at some point, so the cross-server share of the traffic is printed with the split.
 */
export function place(play: Play, servers: number): Placement {
  const home = new Map<string, number>();
  const reason = new Map<string, string>();
  if (servers === 1) {
    for (const c of play.characters.keys()) {
      home.set(c, 0);
      reason.set(c, 'one server');
    }
    return { domains: ['verona.test'], home, reason };
  }
  if (servers !== 2) throw new Error('--servers is 1 or 2');
  for (const c of MONTAGUE) if (play.characters.has(c)) home.set(c, 0), reason.set(c, 'house of Montague');
  for (const c of CAPULET) if (play.characters.has(c)) home.set(c, 1), reason.set(c, 'house of Capulet');
  for (const c of play.characters.keys()) {
    if (home.has(c)) continue;
    let toMontague = 0;
    let toCapulet = 0;
    for (const m of play.messages) {
      if (m.from !== c) continue;
      if (MONTAGUE.includes(m.to)) toMontague++;
      else if (CAPULET.includes(m.to)) toCapulet++;
    }
    const side = toCapulet > toMontague ? 1 : 0;
    home.set(c, side);
    reason.set(c, `speaks ${toMontague} lines to Montagues, ${toCapulet} to Capulets`);
  }
  return { domains: ['montague.test', 'capulet.test'], home, reason };
}

/** Messages whose sender and recipient live on different servers. */
export function crossServer(play: Play, placement: Placement): number {
  return play.messages.filter((m) => placement.home.get(m.from) !== placement.home.get(m.to)).length;
}
