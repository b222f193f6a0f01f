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
 * house it exchanges the most lines with (sent + received) in this play. One with no lean either way
 * (e.g. Friar John, who speaks only to Friar Laurence) follows the already placed character it exchanges
 * the most lines with; neutrals are placed in order of how much they talk to the houses. The share of
 * lines crossing between the servers is printed with the split.
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
  const houses: [string[], number, string][] = [
    [MONTAGUE, 0, 'house of Montague'],
    [CAPULET, 1, 'house of Capulet'],
  ];
  for (const [members, side, why] of houses) {
    for (const c of members) {
      if (!play.characters.has(c)) continue;
      home.set(c, side);
      reason.set(c, why);
    }
  }
  // Lines each pair of characters exchange, both directions.
  const exchanged = new Map<string, Map<string, number>>();
  const add = (a: string, b: string) => {
    const row = exchanged.get(a) ?? new Map<string, number>();
    row.set(b, (row.get(b) ?? 0) + 1);
    exchanged.set(a, row);
  };
  for (const m of play.messages) {
    add(m.from, m.to);
    add(m.to, m.from);
  }
  const withHouse = (c: string, members: string[]) =>
    members.reduce((n, x) => n + (exchanged.get(c)?.get(x) ?? 0), 0);
  const neutrals = [...play.characters.keys()]
    .filter((c) => !home.has(c))
    .sort((x, y) => withHouse(y, [...MONTAGUE, ...CAPULET]) - withHouse(x, [...MONTAGUE, ...CAPULET]));
  for (const c of neutrals) {
    const m = withHouse(c, MONTAGUE);
    const k = withHouse(c, CAPULET);
    if (m !== k) {
      home.set(c, k > m ? 1 : 0);
      reason.set(c, `exchanges ${m} lines with Montagues, ${k} with Capulets`);
      continue;
    }
    // No lean either way: follow the placed character it exchanges most lines with.
    const partner = [...(exchanged.get(c) ?? new Map<string, number>())]
      .filter(([x]) => home.has(x))
      .sort((x, y) => y[1] - x[1])[0];
    home.set(c, partner ? (home.get(partner[0]) as number) : 0);
    reason.set(
      c,
      partner
        ? `exchanges ${m} lines with each house; follows ${play.characters.get(partner[0])} (${partner[1]} lines)`
        : 'exchanges no lines with anyone placed: Montague',
    );
  }
  return { domains: ['montague.test', 'capulet.test'], home, reason };
}

/** Messages whose sender and recipient live on different servers. */
export function crossServer(play: Play, placement: Placement): number {
  return play.messages.filter((m) => placement.home.get(m.from) !== placement.home.get(m.to)).length;
}
