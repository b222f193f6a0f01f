/** Command-line options of the long-form runners (npm run fuzz, npm run chaos): `--name value`. */
export function option(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

/** A positive number option, or the fallback. */
export function positive(name: string, fallback: number): number {
  const v = option(name);
  const n = v === undefined ? fallback : Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number, not ${v}`);
  return n;
}

/** --seed, or a fresh one (printed by the runner, so a run can be replayed). */
export function seedOption(): number {
  const text = option('seed');
  const seed = text === undefined ? (Date.now() ^ (process.pid << 16)) >>> 1 : Number(text);
  if (!Number.isInteger(seed)) throw new Error(`--seed must be an integer, not ${text}`);
  return seed;
}

/** --only a,b,c as a list, or undefined for all. */
export function onlyOption(): string[] | undefined {
  return option('only')
    ?.split(',')
    .map((s) => s.trim());
}
