import { appendFileSync } from 'node:fs';
import fc from 'fast-check';

/*
 * How every fuzz property runs. In `npm test` each property runs its small base number of cases with a
 * fixed seed, so CI is deterministic; `npm run fuzz` (test/fuzz/run.ts) sets the environment below to run
 * many more cases from a fresh seed, under a time cap, and to collect a summary.
 *
 *   PMB_FUZZ_SCALE    multiplies every property's base number of runs (default 1)
 *   PMB_FUZZ_SEED     the seed of the run (default a fixed one); each property derives its own from it
 *   PMB_FUZZ_TIME_MS  per property: stop starting new cases after this long (not a failure)
 *   PMB_FUZZ_DEADLINE epoch ms after which no property starts a new case
 *   PMB_FUZZ_REPORT   a file each property appends one JSON line of results to
 *   PMB_FUZZ_REPLAY   "<property>|<seed>|<path>" (as a failure prints it): replay that counterexample
 *   PMB_FUZZ_VERBOSE  1 (or 2, with error messages): the frames and link fuzzers print the answers they
 *                     got, by kind, to judge how deep the generated cases reach
 */

const DEFAULT_SEED = 0x504d42;

function envInt(name: string): number | undefined {
  const v = process.env[name];
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`${name} must be a number, not ${JSON.stringify(v)}`);
  return Math.trunc(n);
}

export const FUZZ_SCALE = Math.max(1, envInt('PMB_FUZZ_SCALE') ?? 1);
export const FUZZ_SEED = envInt('PMB_FUZZ_SEED') ?? DEFAULT_SEED;

/** A stable 31-bit hash of a name, so each property gets its own seed from the run's seed. */
function hashName(name: string): number {
  let h = 2166136261;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 16777619);
  return h >>> 1;
}

export interface FuzzReport {
  property: string;
  runs: number;
  failed: boolean;
  interrupted: boolean;
  shrinks: number;
  seed: number;
  path: string | null;
  ms: number;
  error?: string;
  replay?: string;
}

/**
 * Run one property: `baseRuns` cases (times PMB_FUZZ_SCALE), its seed derived from the run's seed. On a
 * failure the error names the seed and path and how to replay it. Shrinking is skipped for the slow
 * properties (`shrink: false`): a failure then reports the first failing case as generated.
 */
export async function checkProperty<Ts extends [unknown, ...unknown[]]>(
  name: string,
  property: fc.IAsyncProperty<Ts> | fc.IProperty<Ts>,
  opts: { runs: number; shrink?: boolean },
): Promise<void> {
  const replay = process.env.PMB_FUZZ_REPLAY?.split('|');
  const replaying = replay !== undefined && replay[0] === name;
  const seed = replaying ? Number(replay[1]) : (FUZZ_SEED ^ hashName(name)) >>> 0;
  const plugins: fc.Plugin<Ts>[] = [];
  const perProperty = envInt('PMB_FUZZ_TIME_MS');
  const deadline = envInt('PMB_FUZZ_DEADLINE');
  const cap = Math.min(
    perProperty ?? Number.POSITIVE_INFINITY,
    deadline === undefined ? Number.POSITIVE_INFINITY : Math.max(1, deadline - Date.now()),
  );
  if (Number.isFinite(cap)) plugins.push(fc.interruptAfterTimeLimit(cap) as fc.Plugin<Ts>);
  const params: fc.Parameters<Ts> = {
    seed,
    numRuns: replaying ? 1 : opts.runs * FUZZ_SCALE,
    endOnFailure: opts.shrink === false,
    includeErrorInReport: true,
    plugins,
    ...(replaying && replay[2] ? { path: replay[2] } : {}),
  };
  const started = Date.now();
  const details = await fc.check(property as fc.IAsyncProperty<Ts>, params);
  const report: FuzzReport = {
    property: name,
    runs: details.numRuns,
    failed: details.failed,
    interrupted: details.interrupted,
    shrinks: details.numShrinks,
    seed: details.seed,
    path: details.counterexamplePath,
    ms: Date.now() - started,
  };
  if (details.failed) {
    report.replay = `${name}|${details.seed}|${details.counterexamplePath ?? ''}`;
    report.error = String(
      (details.errorInstance as Error | null)?.stack ?? details.errorInstance ?? 'failed',
    ).slice(0, 4000);
  }
  const file = process.env.PMB_FUZZ_REPORT;
  if (file) appendFileSync(file, `${JSON.stringify(report)}\n`);
  if (details.failed) {
    // The error first: counterexamples may hold 64 KiB strings, so they come last and cut short.
    const shown = fc.stringify(details.counterexample);
    throw new Error(
      [
        `${name}: failed after ${details.numRuns} run(s) (seed ${details.seed}, path ${details.counterexamplePath})`,
        `Error: ${String((details.errorInstance as Error | null)?.message ?? details.errorInstance).slice(0, 4000)}`,
        `Counterexample: ${shown.length > 4000 ? `${shown.slice(0, 4000)}... (${shown.length} chars)` : shown}`,
        `Replay: PMB_FUZZ_REPLAY='${report.replay}'`,
      ].join('\n'),
      { cause: details.errorInstance },
    );
  }
}

/** Values a field must be ready to receive from a hostile peer: every type, edge numbers, big sizes. */
export function weirdValue(opts: { bigint?: boolean } = {}): fc.Arbitrary<unknown> {
  const leaf: fc.Arbitrary<unknown>[] = [
    fc.constant(null),
    fc.boolean(),
    fc.integer(),
    fc.constantFrom(
      -1,
      0,
      1,
      2 ** 31,
      2 ** 32 - 1,
      2 ** 32,
      2 ** 53 - 1,
      2 ** 53,
      2 ** 64,
      -(2 ** 53),
      1e300,
      -1e300,
      0.5,
      -0.5,
      Number.NaN,
      Number.POSITIVE_INFINITY,
      Number.NEGATIVE_INFINITY,
      Number.MIN_VALUE,
    ),
    fc.double(),
    fc.string({ maxLength: 40 }),
    fc.string({ unit: 'binary', maxLength: 20 }),
    fc.integer({ min: 300, max: 70_000 }).map((n) => 'x'.repeat(n)),
    fc.uint8Array({ maxLength: 64 }),
    fc.integer({ min: 5000, max: 70_000 }).map((n) => new Uint8Array(n)),
    fc.constant(undefined),
    fc.constantFrom('', 'ping', 'a'.repeat(40), '0'.repeat(40), '__proto__', 'constructor', '$bytes'),
  ];
  if (opts.bigint) leaf.push(fc.bigInt({ min: -(2n ** 64n), max: 2n ** 64n - 1n }));
  const leafArb = fc.oneof(...leaf);
  return fc.oneof(
    { weight: 6, arbitrary: leafArb },
    { weight: 1, arbitrary: fc.array(leafArb, { maxLength: 5 }) },
    { weight: 1, arbitrary: fc.dictionary(fc.string({ maxLength: 8 }), leafArb, { maxKeys: 4 }) },
    {
      weight: 1,
      arbitrary: fc.integer({ min: 1, max: 60 }).map((depth) => nest('x', depth, depth % 2 === 0)),
    },
  );
}

/** `depth` levels of one-key maps (or one-element arrays) around `inner`. */
export function nest(inner: unknown, depth: number, arrays: boolean): unknown {
  let v = inner;
  for (let i = 0; i < depth; i++) v = arrays ? [v] : { a: v };
  return v;
}

type Path = (string | number)[];

/** Every path to a node of a frame-shaped tree (maps, arrays, leaves), the root excluded. */
export function pathsOf(value: unknown, at: Path = [], out: Path[] = []): Path[] {
  if (value === null || typeof value !== 'object' || value instanceof Uint8Array) return out;
  const entries = Array.isArray(value) ? value.map((v, i) => [i, v] as const) : Object.entries(value);
  for (const [k, v] of entries) {
    const p = [...at, k];
    out.push(p);
    if (out.length < 200) pathsOf(v, p, out);
  }
  return out;
}

/** A deep copy of a frame-shaped tree (byte strings copied too). */
export function cloneTree<T>(value: T): T {
  if (value instanceof Uint8Array) return new Uint8Array(value) as T;
  if (Array.isArray(value)) return value.map(cloneTree) as T;
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) setOwn(out, k, cloneTree(v));
    return out as T;
  }
  return value;
}

export type Mutation =
  | { op: 'drop'; pick: number }
  | { op: 'replace'; pick: number; value: unknown }
  | { op: 'extra'; pick: number; key: string; value: unknown }
  | { op: 'swap-bytes-text'; pick: number }
  | { op: 'repeat'; pick: number; times: number };

export function mutationArb(opts: { bigint?: boolean } = {}): fc.Arbitrary<Mutation> {
  const pick = fc.nat({ max: 10_000 });
  return fc.oneof(
    fc.record({ op: fc.constant('drop' as const), pick }),
    fc.record({ op: fc.constant('replace' as const), pick, value: weirdValue(opts) }),
    fc.record({
      op: fc.constant('extra' as const),
      pick,
      key: fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom('type', 'id', 'sig', '$bytes')),
      value: weirdValue(opts),
    }),
    fc.record({ op: fc.constant('swap-bytes-text' as const), pick }),
    fc.record({ op: fc.constant('repeat' as const), pick, times: fc.integer({ min: 2, max: 80 }) }),
  );
}

/**
 * Apply mutations to a copy of `frame`: drop a field or element, replace a value by one of another type or
 * an edge value, add an unknown field, turn bytes into text or text into bytes, repeat an array's items.
 * `pick` chooses the node among all paths (the root's fields included).
 */
export function mutate(
  frame: Record<string, unknown>,
  mutations: readonly Mutation[],
): Record<string, unknown> {
  const out = cloneTree(frame);
  for (const m of mutations) {
    const paths = pathsOf(out);
    if (paths.length === 0) continue;
    const path = paths[m.pick % paths.length] as Path;
    const parentPath = path.slice(0, -1);
    const key = path.at(-1) as string | number;
    let parent: unknown = out;
    for (const k of parentPath) parent = (parent as Record<string | number, unknown>)[k];
    if (parent === null || typeof parent !== 'object') continue;
    const p = parent as Record<string | number, unknown>;
    const current = p[key];
    switch (m.op) {
      case 'drop':
        if (Array.isArray(p)) p.splice(key as number, 1);
        else delete p[key];
        break;
      case 'replace':
        setOwn(p, key, cloneTree(m.value));
        break;
      case 'extra':
        if (current !== null && typeof current === 'object' && !(current instanceof Uint8Array)) {
          if (Array.isArray(current)) current.push(cloneTree(m.value));
          else setOwn(current as Record<string, unknown>, m.key, cloneTree(m.value));
        } else if (!Array.isArray(p)) setOwn(p, m.key, cloneTree(m.value));
        break;
      case 'swap-bytes-text':
        if (current instanceof Uint8Array) p[key] = Buffer.from(current).toString('base64');
        else if (typeof current === 'string') p[key] = new TextEncoder().encode(current);
        else p[key] = new Uint8Array([1, 2, 3]);
        break;
      case 'repeat':
        if (Array.isArray(current) && current.length > 0) {
          p[key] = Array.from({ length: m.times }, (_, i) => cloneTree(current[i % current.length]));
        } else p[key] = Array.from({ length: m.times }, () => cloneTree(current));
        break;
    }
  }
  return out;
}

/** obj[key] = value as an own enumerable field, even for "__proto__" (which plain assignment would not make). */
export function setOwn(obj: Record<string | number, unknown>, key: string | number, value: unknown): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

/** JSON cannot carry bigints: the same value as a number (what a JSON peer would send). */
export function jsonSafe(value: unknown): unknown {
  if (typeof value === 'bigint') return Number(value);
  if (value instanceof Uint8Array || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map(jsonSafe);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) setOwn(out, k, jsonSafe(v));
  return out;
}
