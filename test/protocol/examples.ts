/**
 * Shared by the frame-vector generator and the protocol tests: where the vectors and docs live, their
 * shape, the schema of each frame type, and how an example is rendered into docs/protocol.md.
 */
import { readFile } from 'node:fs/promises';
import type { z } from 'zod';
import { fromHex, toHex } from '../../src/protocol/bytes.js';
import { cborCodec, jsonCodec } from '../../src/protocol/codec.js';
import { METHODS, PUSHES } from '../../src/protocol/frames.js';

/** The repository root, from dist/test/protocol/ where the compiled tests and generator run. */
export const ROOT = new URL('../../../', import.meta.url);
export const FRAMES_DIR = new URL('test/vectors/frames/', ROOT);
export const PROTOCOL_MD = new URL('docs/protocol.md', ROOT);
export const LIMITS_MD = new URL('docs/limits.md', ROOT);

/** One frame in both encodings: `json` is the exact pmb.v1.json text, `cbor` the pmb.v1.cbor bytes in hex. */
export interface EncodedFrame {
  json: string;
  cbor: string;
}

export interface MethodVector {
  description: string;
  method: string;
  request: EncodedFrame;
  response: EncodedFrame;
  [extra: string]: unknown;
}

export interface PushVector {
  description: string;
  push: string;
  frames: EncodedFrame[];
  [extra: string]: unknown;
}

export function encodeBoth(frame: unknown): EncodedFrame {
  return { json: jsonCodec.encode(frame) as string, cbor: toHex(cborCodec.encode(frame) as Uint8Array) };
}

export function decodeCborHex(hex: string): unknown {
  return cborCodec.decode(fromHex(hex));
}

/** The schema a frame of this type must satisfy: a request, a `<name>.ok` response, or a push. */
export function schemaForType(type: string): z.ZodType | undefined {
  for (const m of METHODS) {
    if (m.name === type) return m.request;
    if (m.okType === type) return m.response;
  }
  return PUSHES.find((p) => p.name === type)?.schema;
}

/** File name of the vector of a method or push: the frame type itself, e.g. `login.start.json`. */
export function vectorFile(name: string): URL {
  return new URL(`${name}.json`, FRAMES_DIR);
}

export async function readVector<T extends MethodVector | PushVector>(name: string): Promise<T> {
  return JSON.parse(await readFile(vectorFile(name), 'utf8')) as T;
}

/** `<!-- example NAME PART -->` ... `<!-- /example -->`; PART is request, response or a push frame index. */
export const EXAMPLE_RE = /<!-- example (\S+) (\S+) -->\n[\s\S]*?<!-- \/example -->/g;

export function isMethodVector(vector: MethodVector | PushVector): vector is MethodVector {
  return typeof vector.method === 'string';
}

export function exampleFrame(vector: MethodVector | PushVector, part: string): EncodedFrame | undefined {
  if (isMethodVector(vector)) {
    return part === 'request' ? vector.request : part === 'response' ? vector.response : undefined;
  }
  return /^\d+$/.test(part) ? vector.frames[Number(part)] : undefined;
}

/** The Markdown of one example: the JSON frame pretty-printed, then its CBOR bytes as hex, 32 bytes a line. */
export function renderExample(name: string, part: string, frame: EncodedFrame): string {
  const pretty = JSON.stringify(JSON.parse(frame.json), null, 2);
  const hex = frame.cbor.match(/.{1,64}/g)?.join('\n') ?? '';
  return [
    `<!-- example ${name} ${part} -->`,
    '```json',
    pretty,
    '```',
    `CBOR (${frame.cbor.length / 2} bytes):`,
    '```',
    hex,
    '```',
    '<!-- /example -->',
  ].join('\n');
}

/** docs/protocol.md with every example block re-rendered from the vectors. */
export async function renderExamples(markdown: string): Promise<string> {
  const blocks = [...markdown.matchAll(EXAMPLE_RE)];
  const rendered = new Map<string, string>();
  for (const [block, name, part] of blocks) {
    const vector = await readVector(name as string);
    const frame = exampleFrame(vector, part as string);
    if (!frame) throw new Error(`${name}.json has no frame "${part}"`);
    rendered.set(block, renderExample(name as string, part as string, frame));
  }
  return markdown.replace(EXAMPLE_RE, (block) => rendered.get(block) ?? block);
}
