import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { z } from 'zod';
import { createRecord, generateIdentity, signBytes } from '../../src/crypto/index.js';
import { linkTranscript, proveLink } from '../../src/federation/handshake.js';
import { requestSigningBytes } from '../../src/federation/link.js';
import { method } from '../../src/protocol/frames.js';
import { S2S_SUBPROTOCOL } from '../../src/protocol/s2s.js';
import type { PmbServer } from '../../src/server/index.js';
import { startNetwork, type TestNetwork } from '../helpers/network.js';
import { RawPeer } from '../helpers/raw.js';
import { rawHello, rawLink } from '../helpers/raw-link.js';
import { until } from '../helpers/wait.js';

const Echo = method('s2s.test.echo', {
  params: { text: z.string() },
  result: { text: z.string(), by: z.string() },
  errors: [],
  auth: false,
  summary: 'test only',
});

describe('server links (TestNetwork)', () => {
  let net: TestNetwork;
  before(async () => {
    net = await startNetwork(3, {
      links: { backoff: { initialMs: 50, maxMs: 400 }, heartbeatMs: 400 },
    });
  });
  after(async () => {
    await net.close();
  });

  it('two servers link: both see the link open and pin each other’s domain to its key', async () => {
    const [s1, s2] = net.servers as [PmbServer, PmbServer];
    const link = await s1.context.links.connect('s2.test');
    assert.equal(link.domain, 's2.test');
    assert.equal(link.fingerprint, s2.fingerprint);
    assert.equal(link.initiator, true);
    await until(() => s2.context.links.get('s1.test') !== undefined, 5000, 's2 to see the link');
    const back = s2.context.links.get('s1.test');
    assert.equal(back?.fingerprint, s1.fingerprint);
    assert.equal(back?.initiator, false);
    assert.equal(s1.context.store.identities.domainKey('s2.test'), s2.fingerprint);
    assert.equal(s2.context.store.identities.domainKey('s1.test'), s1.fingerprint);
    assert.equal(await s1.context.links.connect('s2.test'), link, 'one link per peer domain');
  });

  it('requests travel both ways on an open link, through handlers registered on Links', async () => {
    const [s1, s2] = net.servers as [PmbServer, PmbServer];
    s1.context.links.handle(Echo, async (p) => ({ text: p.text as string, by: 's1' }));
    s2.context.links.handle(Echo, async (p) => ({ text: p.text as string, by: 's2' }));
    const there = await s1.context.links.connect('s2.test');
    assert.deepEqual(await there.request(Echo, { text: 'hi' }), { text: 'hi', by: 's2' });
    const back = s2.context.links.get('s1.test');
    assert.deepEqual(await back?.request(Echo, { text: 'yo' }), { text: 'yo', by: 's1' });
    await assert.rejects(there.request(Echo, { text: 1 }), { code: 'bad_frame' });
  });

  it('a server impersonating another domain (pinned to another key) is refused with wrong_server', async () => {
    const s2 = net.servers[1] as PmbServer;
    const impostor = (await generateIdentity()).identity;
    const record = await createRecord(impostor, {
      kind: 'server',
      subject: impostor.fingerprint,
      seq: 1,
      prev: null,
      ts: Date.now(),
      body: { domain: 's1.test', endpoints: { ws: 'ws://127.0.0.1:1' } },
    });
    const { peer, ok } = await rawHello(s2, { identity: impostor, record });
    assert.equal(ok.type, 'error');
    assert.equal(ok.code, 'wrong_server');
    await peer.closed();
    assert.equal(s2.context.store.identities.domainKey('s1.test'), net.servers[0]?.fingerprint);
  });

  it('a forged proof (the transcript signed by another key) is refused at s2s.auth', async () => {
    const [, s2, s3] = net.servers as [PmbServer, PmbServer, PmbServer];
    const as = { identity: s3.context.identity, record: s3.context.serverRecord };
    const { peer, ok, nonce } = await rawHello(s2, as);
    assert.equal(ok.type, 's2s.hello.ok', JSON.stringify(ok.code));
    const other = (await generateIdentity()).identity;
    const t = linkTranscript({
      initiator: s3.fingerprint,
      responder: s2.fingerprint,
      initiatorNonce: nonce,
      responderNonce: ok.nonce as Uint8Array,
    });
    const answer = await peer.request({ type: 's2s.auth', id: 2, proof: await proveLink(other, t) });
    assert.equal(answer.type, 'error');
    assert.equal(answer.code, 'bad_signature');
    await peer.closed();
    assert.equal(s2.context.links.get('s3.test'), undefined);
  });

  it('a replayed s2s.auth proof from an earlier link is refused', async () => {
    const [, s2, s3] = net.servers as [PmbServer, PmbServer, PmbServer];
    const as = { identity: s3.context.identity, record: s3.context.serverRecord };
    const first = await rawHello(s2, as);
    const t = linkTranscript({
      initiator: s3.fingerprint,
      responder: s2.fingerprint,
      initiatorNonce: first.nonce,
      responderNonce: first.ok.nonce as Uint8Array,
    });
    const proof = await proveLink(s3.context.identity, t);
    const opened = await first.peer.request({ type: 's2s.auth', id: 2, proof });
    assert.equal(opened.type, 's2s.auth.ok');
    first.peer.close();
    await first.peer.closed();

    const second = await rawHello(s2, as);
    assert.equal(second.ok.type, 's2s.hello.ok');
    const replay = await second.peer.request({ type: 's2s.auth', id: 2, proof });
    assert.equal(replay.type, 'error');
    assert.equal(replay.code, 'bad_signature');
    await second.peer.closed();
  });

  it('a request with a forged signature is refused (bad_signature), and repeated ones close the link', async () => {
    const [, s2, s3] = net.servers as [PmbServer, PmbServer, PmbServer];
    s2.context.links.handle(Echo, async (p) => ({ text: p.text as string, by: 's2' }));
    const as = { identity: s3.context.identity, record: s3.context.serverRecord };
    const { peer, nonces } = await rawLink(s2, as);
    const params = { text: 'hi' };
    const good = await peer.request({
      type: Echo.name,
      id: 10,
      ...params,
      sig: await signBytes(as.identity, requestSigningBytes(nonces, 10, Echo.name, params)),
    });
    assert.equal(good.type, 's2s.test.echo.ok', JSON.stringify(good));
    assert.equal(good.by, 's2');
    const other = (await generateIdentity()).identity;
    const forged = await peer.request({
      type: Echo.name,
      id: 11,
      ...params,
      sig: await signBytes(other, requestSigningBytes(nonces, 11, Echo.name, params)),
    });
    assert.equal(forged.type, 'error');
    assert.equal(forged.code, 'bad_signature');
    // Signed, but the params were changed afterwards.
    const sig12 = await signBytes(as.identity, requestSigningBytes(nonces, 12, Echo.name, params));
    const tampered = await peer.request({ type: Echo.name, id: 12, text: 'bye', sig: sig12 });
    assert.equal(tampered.code, 'bad_signature');
    const unsigned = await peer.request({ type: Echo.name, id: 13, ...params });
    assert.equal(unsigned.code, 'bad_signature');
    await peer.closed();
  });

  it('a signed request replayed on another link (other nonces) is refused', async () => {
    const [, s2, s3] = net.servers as [PmbServer, PmbServer, PmbServer];
    s2.context.links.handle(Echo, async (p) => ({ text: p.text as string, by: 's2' }));
    const as = { identity: s3.context.identity, record: s3.context.serverRecord };
    const first = await rawLink(s2, as);
    const params = { text: 'once' };
    const frame = {
      type: Echo.name,
      id: 5,
      ...params,
      sig: await signBytes(as.identity, requestSigningBytes(first.nonces, 5, Echo.name, params)),
    };
    assert.equal((await first.peer.request(frame)).type, 's2s.test.echo.ok');
    first.peer.close();
    await first.peer.closed();
    const second = await rawLink(s2, as);
    const replay = await second.peer.request(frame);
    assert.equal(replay.type, 'error');
    assert.equal(replay.code, 'bad_signature');
    second.peer.close();
    await second.peer.closed();
  });

  it('a link whose peer stops answering pings is terminated after two intervals', async () => {
    const [, s2, s3] = net.servers as [PmbServer, PmbServer, PmbServer];
    const as = { identity: s3.context.identity, record: s3.context.serverRecord };
    const { peer } = await rawLink(s2, as);
    await until(() => s2.context.links.get('s3.test')?.open === true, 2000, 'the link to open');
    const link = s2.context.links.get('s3.test');
    peer.ws.pause(); // reads nothing more: no pong
    await until(() => link?.open === false, 5000, 'the silent link to be terminated');
    peer.ws.terminate();
  });

  it('anything but s2s.hello first is refused and closed', async () => {
    const s2 = net.servers[1] as PmbServer;
    const peer = await RawPeer.open(s2.url, 'cbor', S2S_SUBPROTOCOL);
    const answer = await peer.request({ type: 'hello', id: 1, versions: [1] });
    assert.equal(answer.type, 'error');
    assert.equal(answer.code, 'hello_required');
    await peer.closed();
  });

  it('a link that drops comes back when the peer restarts on the same port and data dir', async () => {
    const s1 = net.servers[0] as PmbServer;
    const s2fp = net.servers[1]?.fingerprint;
    const link = await s1.context.links.connect('s2.test');
    await net.stop(1);
    await until(() => !link.open, 5000, 'the link to drop');
    assert.equal(s1.context.links.get('s2.test'), undefined);
    await new Promise((r) => setTimeout(r, 300)); // a few failed retries while s2 is down
    const s2 = await net.restart(1);
    assert.equal(s2.fingerprint, s2fp);
    await until(() => s1.context.links.get('s2.test')?.open === true, 10_000, 's1 to relink');
    await until(() => s2.context.links.get('s1.test')?.open === true, 5000, 's2 to see the relink');
    assert.notEqual(s1.context.links.get('s2.test'), link);
  });
});

describe('configured peers', () => {
  it('a server keeps a link to each of its peers from the start, retrying until the peer is up', async () => {
    const net = await startNetwork(2, {
      links: { backoff: { initialMs: 50, maxMs: 400 } },
      config: { peers: ['s1.test', 's2.test'] },
    });
    try {
      const [s1, s2] = net.servers as [PmbServer, PmbServer];
      await until(() => s1.context.links.get('s2.test')?.open === true, 10_000, 's1 to link to its peer');
      await until(() => s2.context.links.get('s1.test')?.open === true, 5000, 's2 to hold the link too');
      assert.equal(s1.context.links.get('s1.test'), undefined, 'never a link to itself');
      // Stopped and started again, s2 is relinked without anyone asking.
      await net.stop(1);
      await new Promise((r) => setTimeout(r, 200));
      const back = await net.restart(1);
      await until(() => back.context.links.get('s1.test')?.open === true, 10_000, 'the peers to relink');
    } finally {
      await net.close();
    }
  });
});
