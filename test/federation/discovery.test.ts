import assert from 'node:assert/strict';
import { createServer as createHttpServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { armorPublicKey } from '../../src/crypto/index.js';
import { Discovery, discoverServer } from '../../src/federation/discovery.js';
import {
  formatResolveTarget,
  parseResolveEntries,
  parseResolveTarget,
} from '../../src/federation/resolve.js';
import { discoveryDocument, MAX_DISCOVERY_BYTES, PmbError } from '../../src/protocol/index.js';
import type { PmbServer } from '../../src/server/index.js';
import { newIdentity, startServer } from '../helpers/servers.js';

type Started = PmbServer & { dir: string };

const hostPort = (server: { port: number }) => `127.0.0.1:${server.port}`;
const wellKnown = (server: Started) => `http://${hostPort(server)}/.well-known/pmb`;

/** A tiny HTTP server answering every request with `answer`; resolves to it and its host:port. */
async function fakeServer(
  answer: (res: import('node:http').ServerResponse) => void,
): Promise<{ server: Server; at: string }> {
  const server = createHttpServer((_req, res) => answer(res));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { server, at: `127.0.0.1:${(server.address() as AddressInfo).port}` };
}

const close = (s: Server) =>
  new Promise<void>((r) => {
    s.closeAllConnections();
    s.close(() => r());
  });

/** Asserts a PmbError with that code whose message matches. */
async function refused(p: Promise<unknown>, code: string, message: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof PmbError, `expected a PmbError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    assert.match(err.message, message);
    return true;
  });
}

describe('discovery', () => {
  let a: Started;
  let b: Started;
  let c: Started;
  before(async () => {
    b = await startServer({ domain: 'b.test' });
    c = await startServer({ domain: 'c.test' });
    a = await startServer({ domain: 'a.test', resolve: { 'b.test': hostPort(b), 'x.test': hostPort(c) } });
  });
  after(async () => {
    await Promise.all([a?.close(), b?.close(), c?.close()]);
  });

  it('serves a /.well-known/pmb document that satisfies the schema', async () => {
    const doc = discoveryDocument.parse(await (await fetch(wellKnown(b))).json());
    assert.equal(doc.domain, 'b.test');
    assert.equal(doc.fingerprint, b.fingerprint);
    assert.equal(doc.websocket, b.url);
    assert.equal(doc.server2server, undefined);
  });

  it('server A finds B through its resolve map and gets B real key', async () => {
    const info = await a.context.discovery.lookup('B.test');
    assert.equal(info.domain, 'b.test');
    assert.equal(info.fingerprint, b.fingerprint);
    assert.equal(info.publicKey.fingerprint, b.fingerprint);
    assert.equal(info.websocket, b.url);
    assert.deepEqual(info.versions, [1]);
    assert.equal(info.source, wellKnown(b));
    // Cached: the same object while fresh.
    assert.equal(await a.context.discovery.lookup('b.test'), info);
  });

  it('refuses a server that says it is another domain', async () => {
    await refused(
      a.context.discovery.lookup('x.test'),
      'wrong_domain',
      new RegExp(
        `server at http://${hostPort(c)} \\(resolve entry for x.test\\) says it is c.test, not x.test`,
      ),
    );
  });

  it('gives a clear error for an unreachable entry, within the timeout', async () => {
    // A port that was just free: nothing listens there.
    const { server, at } = await fakeServer((res) => res.end());
    await close(server);
    await refused(
      discoverServer('b.test', { resolve: { 'b.test': at }, timeoutMs: 2000 }),
      'unreachable',
      new RegExp(`cannot reach the server at http://${at} \\(resolve entry for b.test\\) \\(ECONNREFUSED`),
    );
    // A server that accepts but never answers: the deadline holds.
    const silent = await fakeServer(() => {});
    try {
      const t0 = Date.now();
      await refused(
        discoverServer('b.test', { resolve: { 'b.test': silent.at }, timeoutMs: 300 }),
        'timeout',
        /did not answer within 300 ms/,
      );
      assert.ok(Date.now() - t0 < 2000, `took ${Date.now() - t0} ms`);
    } finally {
      await close(silent.server);
    }
  });

  it('refuses a document whose fingerprint is not the fingerprint of its key (impersonation seed)', async () => {
    // Claims to be b.test with b's fingerprint but carries another key.
    const other = await newIdentity();
    const real = discoveryDocument.parse(await (await fetch(wellKnown(b))).json());
    const forged = { ...real, publicKey: armorPublicKey(other) };
    const fake = await fakeServer((res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(forged));
    });
    try {
      await refused(
        discoverServer('b.test', { resolve: { 'b.test': fake.at } }),
        'bad_server',
        new RegExp(`publishes the key ${other.fingerprint} but claims the fingerprint ${b.fingerprint}`),
      );
    } finally {
      await close(fake.server);
    }
  });

  it('refuses bad documents: not JSON, off-schema, too large, HTTP errors, not a PMB key', async () => {
    const real = discoveryDocument.parse(await (await fetch(wellKnown(b))).json());
    const cases: [string, (res: import('node:http').ServerResponse) => void, string, RegExp][] = [
      ['not json', (res) => res.end('<html>'), 'bad_server', /not JSON/],
      [
        'off schema',
        (res) => res.end(JSON.stringify({ ...real, fingerprint: 'nope' })),
        'bad_server',
        /invalid discovery document \(fingerprint: /,
      ],
      [
        'too large',
        (res) => res.end(JSON.stringify({ ...real, pad: 'x'.repeat(MAX_DISCOVERY_BYTES) })),
        'bad_server',
        /over 65536 bytes/,
      ],
      [
        'http 404',
        (res) => {
          res.statusCode = 404;
          res.end('{}');
        },
        'bad_server',
        /answered HTTP 404/,
      ],
      [
        'not a key',
        (res) => res.end(JSON.stringify({ ...real, publicKey: 'hello' })),
        'bad_key',
        /not a usable PMB key/,
      ],
      [
        'unknown versions',
        (res) => res.end(JSON.stringify({ ...real, versions: [7] })),
        'unsupported_version',
        /speaks protocol versions 7/,
      ],
    ];
    for (const [name, answer, code, message] of cases) {
      const fake = await fakeServer(answer);
      try {
        await refused(discoverServer('b.test', { resolve: { 'b.test': fake.at } }), code, message);
      } catch (err) {
        throw new Error(`case ${name}: ${(err as Error).message}`);
      } finally {
        await close(fake.server);
      }
    }
  });

  it('keeps answers for the TTL, and not failures', async () => {
    let t = 1_000_000;
    let answers = 0;
    const real = await (await fetch(wellKnown(b))).text();
    const fake = await fakeServer((res) => {
      answers++;
      res.end(answers === 1 ? 'broken' : real);
    });
    try {
      const d = new Discovery({ resolve: { 'b.test': fake.at }, now: () => t, ttlMs: 1000 });
      await refused(d.lookup('b.test'), 'bad_server', /not JSON/);
      const [x, y] = await Promise.all([d.lookup('b.test'), d.lookup('b.test')]);
      assert.equal(x, y);
      assert.equal(answers, 2, 'concurrent lookups share one request');
      t += 999;
      await d.lookup('b.test');
      assert.equal(answers, 2);
      t += 2;
      await d.lookup('b.test');
      assert.equal(answers, 3, 'asked again after the TTL');
    } finally {
      await close(fake.server);
    }
  });

  it('refuses a bad resolve map when the server is created', () => {
    assert.throws(
      () => new Discovery({ resolve: { 'b.test': '127.0.0.1' } }),
      /resolve entry b.test: "127.0.0.1" has no port/,
    );
  });
});

describe('resolve targets', () => {
  it('accepts host:port (http), https://, IPv4, [IPv6] and host names', () => {
    assert.deepEqual(parseResolveTarget('127.0.0.1:8448'), {
      scheme: 'http',
      host: '127.0.0.1',
      port: 8448,
      origin: 'http://127.0.0.1:8448',
    });
    assert.equal(parseResolveTarget('https://[::1]:443/').origin, 'https://[::1]:443');
    assert.equal(parseResolveTarget('HTTP://Pmb-B.lan:8447').origin, 'http://pmb-b.lan:8447');
    assert.equal(formatResolveTarget(parseResolveTarget('http://localhost:1')), 'localhost:1');
    assert.deepEqual(parseResolveEntries(['B.test=https://127.0.0.1:9, c.test=[::1]:8449']), {
      'b.test': 'https://127.0.0.1:9',
      'c.test': '[::1]:8449',
    });
  });

  it('refuses bad targets with a reason', () => {
    const bad: [string, RegExp][] = [
      ['127.0.0.1', /has no port/],
      ['127.0.0.1:0', /port must be 1-65535/],
      ['127.0.0.1:65536', /port must be 1-65535/],
      ['127.0.0.1:http', /port must be 1-65535/],
      ['256.1.1.1:80', /is not an IPv4 address/],
      ['::1:80', /IPv6 address in brackets/],
      ['[::g]:80', /is not an IPv6 address/],
      ['ws://127.0.0.1:80', /scheme may only be http/],
      ['bad_host:80', /is not a host name/],
    ];
    for (const [value, message] of bad) assert.throws(() => parseResolveTarget(value), message, value);
    assert.throws(() => parseResolveEntries(['b.test']), /is not domain=host:port/);
    assert.throws(() => parseResolveEntries(['b_x=127.0.0.1:1']), /"b_x" is not a domain name/);
    assert.throws(
      () => parseResolveEntries(['b.test=127.0.0.1:1', 'B.test=127.0.0.1:2']),
      /b.test is given twice/,
    );
  });
});
