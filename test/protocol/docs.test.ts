import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { before, describe, it } from 'node:test';
import type { z } from 'zod';
import { discoveryDocument } from '../../src/protocol/discovery.js';
import { ERROR_CODES } from '../../src/protocol/errors.js';
import { METHODS, PUSHES } from '../../src/protocol/frames.js';
import { DEFAULT_LIMITS } from '../../src/protocol/limits.js';
import { EXAMPLE_RE, LIMITS_MD, PROTOCOL_MD, renderExamples } from './examples.js';

/** The text of the `### <name>` section, up to the next heading of level 2 or 3. */
function section(doc: string, name: string): string | undefined {
  const lines = doc.split('\n');
  const start = lines.indexOf(`### ${name}`);
  if (start < 0) return undefined;
  let end = start + 1;
  while (end < lines.length && !/^#{2,3} /.test(lines[end] as string)) end++;
  return lines.slice(start, end).join('\n');
}

/** Field names of a frame schema, without the frame's own `type` and `id`. */
function fields(schema: z.ZodType): string[] {
  const shape = (schema as unknown as { shape: Record<string, unknown> }).shape;
  return Object.keys(shape).filter((k) => k !== 'type' && k !== 'id');
}

const code = (name: string) => `\`${name}\``;

describe('docs/protocol.md', () => {
  let doc = '';
  before(async () => {
    doc = await readFile(PROTOCOL_MD, 'utf8');
  });

  it('has a section for every method, names its <name>.ok response, and lists its fields and errors', () => {
    const missing: string[] = [];
    for (const m of METHODS) {
      const text = section(doc, m.name);
      if (!text) {
        missing.push(`### ${m.name}`);
        continue;
      }
      if (!text.includes(code(m.okType))) missing.push(`${m.okType} in ### ${m.name}`);
      if (!doc.includes(m.okType)) missing.push(m.okType);
      for (const f of [...fields(m.request), ...fields(m.response)]) {
        if (!text.includes(code(f))) missing.push(`field ${f} in ### ${m.name}`);
      }
      for (const e of m.errors) if (!text.includes(code(e))) missing.push(`error ${e} in ### ${m.name}`);
    }
    assert.deepEqual(missing, []);
  });

  it('has a section for every push, listing its fields', () => {
    const missing: string[] = [];
    for (const p of PUSHES) {
      const text = section(doc, p.name);
      if (!text) {
        missing.push(`### ${p.name}`);
        continue;
      }
      for (const f of fields(p.schema))
        if (!text.includes(code(f))) missing.push(`field ${f} in ### ${p.name}`);
    }
    assert.deepEqual(missing, []);
  });

  it('documents no frame that does not exist', () => {
    const reference = doc.slice(doc.indexOf('## 13. Frame reference'), doc.indexOf('## 14.'));
    assert.ok(reference.length > 0, 'section 13 (frame reference) is missing');
    const known = new Set<string>([...METHODS.map((m) => m.name), ...PUSHES.map((p) => p.name)]);
    const headings = [...reference.matchAll(/^### (.+)$/gm)].map((h) => h[1] as string);
    assert.deepEqual(
      headings.filter((h) => !known.has(h)),
      [],
    );
  });

  it('lists every error code with its HTTP status and close code', () => {
    const problems: string[] = [];
    for (const [name, def] of Object.entries(ERROR_CODES)) {
      if (!doc.includes(code(name))) problems.push(`${name} is not mentioned`);
      const row = doc.split('\n').find((l) => l.startsWith(`| ${code(name)} |`));
      if (!row) {
        problems.push(`${name} has no row in the error table`);
        continue;
      }
      const [status, close] = row
        .split('|')
        .map((c) => c.trim())
        .slice(2, 4);
      if (status !== String(def.status) || close !== String(def.close)) {
        problems.push(
          `${name}: the table says ${status}/${close}, errors.ts says ${def.status}/${def.close}`,
        );
      }
    }
    assert.deepEqual(problems, []);
  });

  it('lists every field of the /.well-known/pmb document in 2.1 Discovery', () => {
    const text = section(doc, '2.1 Discovery') ?? '';
    const missing = Object.keys(discoveryDocument.shape).filter((f) => !text.includes(`| ${code(f)} |`));
    assert.deepEqual(missing, []);
  });

  it('names every limit with its default', () => {
    const missing = Object.entries(DEFAULT_LIMITS)
      .filter(([k, v]) => !doc.split('\n').some((l) => l.startsWith(`| ${code(k)} | ${v} `)))
      .map(([k]) => k);
    assert.deepEqual(missing, []);
  });

  it('shows an example request and response for every method and a frame of every push', () => {
    const examples = new Set([...doc.matchAll(EXAMPLE_RE)].map((m) => `${m[1]} ${m[2]}`));
    const missing = [
      ...METHODS.flatMap((m) => [`${m.name} request`, `${m.name} response`]),
      ...PUSHES.map((p) => `${p.name} 0`),
    ].filter((e) => !examples.has(e));
    assert.deepEqual(missing, []);
  });

  it('shows the examples exactly as test/vectors/frames holds them', async () => {
    // Fix with: npm run build && node dist/test/protocol/generate-examples.js --docs
    assert.equal(await renderExamples(doc), doc);
  });
});

describe('docs/limits.md', () => {
  it('lists every key of DEFAULT_LIMITS with its default', async () => {
    const lines = (await readFile(LIMITS_MD, 'utf8')).split('\n');
    const missing = Object.entries(DEFAULT_LIMITS)
      .filter(([k, v]) => !lines.some((l) => l.startsWith(`| ${code(k)} | ${v} |`)))
      .map(([k, v]) => `${k} (default ${v})`);
    assert.deepEqual(missing, []);
  });
});
