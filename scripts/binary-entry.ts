// Entry of the single-file executable (scripts/build-binary.ts bundles it with Bun). bin/pmb is the same
// thing for Node: it loads the compiled dist/src/cli/main.js instead of the TypeScript sources.
import { run } from '../src/cli/main.js';

await run();
