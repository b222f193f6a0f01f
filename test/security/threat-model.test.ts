import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';

const ROOT = new URL('../../../', import.meta.url);
const DOC = new URL('docs/threat-model.md', ROOT);
/** `test/<dir>/<file>.test.ts › <test name>` in a code span. */
const REFERENCE = /`(test\/[\w/-]+\.test\.ts) › ([^`]+)`/g;
/** The name of an it(...) or test(...) written as a plain string literal. */
const TEST_CALL = /\b(?:it|test)\(\s*(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)"|`((?:[^`\\$]|\\.)*)`)/g;

/** The names of the tests a source file declares with a literal name. */
function testNames(source: string): Set<string> {
  const names = new Set<string>();
  for (const m of source.matchAll(TEST_CALL)) {
    names.add((m[1] ?? m[2] ?? m[3] ?? '').replace(/\\(.)/g, '$1'));
  }
  return names;
}

describe('docs/threat-model.md', () => {
  it('every test it names exists, and every test in test/security is named in it', async () => {
    const doc = await readFile(DOC, 'utf8');
    const refs = [...doc.matchAll(REFERENCE)].map((m) => ({ file: m[1] as string, name: m[2] as string }));
    assert.ok(refs.length > 50, `only ${refs.length} references found: has the format changed?`);
    const sources = new Map<string, Set<string>>();
    const namesIn = async (file: string) => {
      let names = sources.get(file);
      if (!names) {
        names = testNames(await readFile(new URL(file, ROOT), 'utf8').catch(() => ''));
        sources.set(file, names);
      }
      return names;
    };
    const missing: string[] = [];
    for (const { file, name } of refs)
      if (!(await namesIn(file)).has(name)) missing.push(`${file} › ${name}`);
    assert.deepEqual(missing, [], 'tests named in docs/threat-model.md that do not exist');

    const named = new Set(refs.map((r) => `${r.file} › ${r.name}`));
    const unnamed: string[] = [];
    const dir = new URL('test/security/', ROOT);
    for (const f of (await readdir(dir)).filter((f) => f.endsWith('.test.ts')).sort()) {
      const file = `test/security/${f}`;
      for (const name of await namesIn(file)) {
        if (file.endsWith('/threat-model.test.ts')) continue;
        if (!named.has(`${file} › ${name}`)) unnamed.push(`${file} › ${name}`);
      }
    }
    assert.deepEqual(unnamed, [], 'tests of test/security that docs/threat-model.md does not name');
  });
});
