import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { test } from 'node:test';

/** src/crypto runs in browsers (the extension) and on Bun: only WebCrypto and src/protocol, no Node APIs. */
test('src/crypto uses no Node-only module or Buffer', async () => {
  const dir = new URL('../../../src/crypto/', import.meta.url);
  const files = (await readdir(dir)).filter((f) => f.endsWith('.ts'));
  assert.ok(files.length >= 5, `expected the crypto sources in ${dir.pathname}`);
  for (const f of files) {
    const text = await readFile(new URL(f, dir), 'utf8');
    const code = text.replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, '');
    assert.doesNotMatch(
      code,
      /from\s+['"]node:|require\(|\bBuffer\b|\bprocess\./,
      `${f} must stay browser-safe`,
    );
    for (const m of code.matchAll(/from\s+['"]([^'"]+)['"]/g)) {
      const spec = m[1]!;
      assert.ok(
        spec === 'openpgp' || spec === 'zod' || spec.startsWith('./') || spec.startsWith('../protocol/'),
        `${f} imports ${spec}: src/crypto may import only openpgp, zod, ./ and ../protocol/`,
      );
    }
  }
});
