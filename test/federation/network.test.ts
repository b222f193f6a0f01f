import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { PmbServer } from '../../src/server/index.js';
import { wellKnown } from '../helpers/child.js';
import { type ProcessNetwork, startNetwork, type TestNetwork } from '../helpers/network.js';
import { connectUser } from '../helpers/servers.js';
import { until } from '../helpers/wait.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The discovery document at 127.0.0.1:port, or the error code of the attempt. */
async function documentAt(target: string): Promise<string> {
  try {
    const res = await fetch(`http://${target}/.well-known/pmb`, { signal: AbortSignal.timeout(3000) });
    return ((await res.json()) as { domain: string }).domain;
  } catch (err) {
    return `failed: ${((err as Error).cause as NodeJS.ErrnoException | undefined)?.code ?? (err as Error).name}`;
  }
}

describe('TestNetwork, in-process: partition and heal', { timeout: 60_000 }, () => {
  let net: TestNetwork;
  before(async () => {
    net = await startNetwork(3, { links: { backoff: { initialMs: 50, maxMs: 400 } } });
  });
  after(async () => {
    await net.close();
  });

  it('every node names its server, domain, client URL and fingerprint; peers are reached through the proxies', async () => {
    for (const node of net.nodes) {
      assert.equal(node.domain, `s${node.index + 1}.test`);
      assert.equal(node.server, net.servers[node.index]);
      assert.equal(node.url, node.server.url);
      assert.equal(node.fingerprint, node.server.fingerprint);
      assert.equal((await wellKnown(node.port)).domain, node.domain);
    }
    const s1 = net.servers[0] as PmbServer;
    const through = net.resolve(0)['s2.test'] as string;
    assert.notEqual(through, `127.0.0.1:${net.nodes[1]?.port}`);
    const info = await s1.context.discovery.lookup('s2.test');
    assert.equal(info.websocket, net.nodes[1]?.url, 'the document names the real address, for clients');
    assert.equal(info.link.url, `ws://${through}/`, 'the link goes where the resolve map says');
    // A client of s2 still connects at the address s2 advertises.
    const carol = await connectUser(net.nodes[1] as { url: string }, 'carol');
    assert.equal(carol.server.domain, 's2.test');
    carol.close();
  });

  it('two servers link; a partition closes the link and reconnects fail while cut; heal brings it back', async () => {
    const [s1, s2] = net.servers as [PmbServer, PmbServer];
    const link = await s1.context.links.connect('s2.test');
    assert.ok(link.open);
    await until(() => s2.context.links.get('s1.test')?.open === true, 5000, 's2 to see the link');

    net.partition(0, 1);
    assert.ok(net.isCut(1, 0), 'a partition cuts both ways');
    await until(() => !s1.context.links.get('s2.test'), 5000, 's1 to lose the link');
    await until(() => !s2.context.links.get('s1.test'), 5000, 's2 to lose the link');
    assert.equal(link.open, false);
    await assert.rejects(s1.context.links.connect('s2.test'), { code: 'unreachable' });
    await assert.rejects(s2.context.links.connect('s1.test'), { code: 'unreachable' });
    // Only that pair is cut: s1 still reaches s3.
    assert.ok((await s1.context.links.connect('s3.test')).open);
    // Several backoff rounds (50..400 ms) pass without a link coming back.
    await sleep(800);
    assert.equal(s1.context.links.get('s2.test'), undefined);

    net.heal(0, 1);
    assert.equal(net.isCut(0, 1), false);
    // s1 wanted the link: its own reconnect brings it back, on both sides.
    await until(() => s1.context.links.get('s2.test')?.open === true, 5000, 's1 to relink');
    await until(() => s2.context.links.get('s1.test')?.open === true, 5000, 's2 to see the new link');
    assert.notEqual(s1.context.links.get('s2.test'), link);
  });

  it('an isolated server loses every link and is back with all of them after heal()', async () => {
    const [s1, s2, s3] = net.servers as [PmbServer, PmbServer, PmbServer];
    await s1.context.links.connect('s3.test');
    await s2.context.links.connect('s3.test');
    await until(() => s3.context.links.domains.length === 2, 5000, 's3 to see both links');

    net.isolate(2);
    await until(() => s3.context.links.domains.length === 0, 5000, 's3 to lose every link');
    assert.equal(s1.context.links.get('s3.test'), undefined);
    assert.equal(s2.context.links.get('s3.test'), undefined);
    assert.ok(s1.context.links.get('s2.test')?.open, 's1 and s2 stay linked');
    await assert.rejects(s3.context.links.connect('s1.test'), { code: 'unreachable' });

    net.heal();
    await until(
      () => s1.context.links.get('s3.test')?.open === true && s2.context.links.get('s3.test')?.open === true,
      5000,
      's1 and s2 to relink with s3',
    );
    assert.deepEqual(s3.context.links.domains.sort(), ['s1.test', 's2.test']);
  });

  it('a partition outlives a restart of one side: the restarted server cannot reach its peer until heal', async () => {
    net.partition(0, 1);
    const s2 = await net.restart(1);
    assert.equal(net.nodes[1]?.server, s2);
    assert.equal(net.nodes[1]?.fingerprint, s2.fingerprint);
    await assert.rejects(s2.context.links.connect('s1.test'), { code: 'unreachable' });
    net.heal(1);
    assert.ok((await s2.context.links.connect('s1.test')).open);
  });
});

describe('TestNetwork, process mode: real pmb serve processes', { timeout: 90_000 }, () => {
  let net: ProcessNetwork;
  before(async () => {
    net = await startNetwork(2, { mode: 'process' });
  });
  after(async () => {
    await net.close();
  });

  it('both start and answer /.well-known/pmb with their own domain and key, also through the proxies', async () => {
    for (const node of net.nodes) {
      assert.ok(node.running);
      assert.ok(node.pid && node.pid !== process.pid, 'a process of its own');
      const doc = await wellKnown(node.port);
      assert.equal(doc.domain, node.domain);
      assert.equal(doc.fingerprint, node.fingerprint);
      assert.equal(doc.websocket, node.url);
    }
    const s2ForS1 = net.resolve(0)['s2.test'] as string;
    assert.equal(await documentAt(s2ForS1), 's2.test');
    net.partition(0, 1);
    assert.match(await documentAt(s2ForS1), /^failed/);
    net.heal();
    assert.equal(await documentAt(s2ForS1), 's2.test');
  });

  it('kill -9 of s2 and a restart on the same data dir: same key, same port, and its users log in again', async () => {
    const s2 = net.nodes[1]!;
    const bob = await connectUser(s2, 'bob');
    const alice = await connectUser(net.nodes[0]!, 'alice');
    const dave = await connectUser(net.nodes[0]!, 'dave');
    const found = await alice.lookup('dave@s1.test');
    assert.equal(found.fingerprint, dave.identity.fingerprint);
    assert.deepEqual(found.addresses, ['dave@s1.test']);
    alice.close();
    dave.close();
    bob.close();
    const fingerprint = s2.fingerprint;
    const pid = s2.pid!;

    await net.kill(1);
    assert.equal(s2.running, false);
    assert.throws(() => process.kill(pid, 0), { code: 'ESRCH' });
    await assert.rejects(wellKnown(s2.port));
    assert.ok(
      s2.output.some((l) => l.includes('pmb server listening')),
      'its logs were kept',
    );

    const again = await net.restart(1);
    assert.equal(again, s2);
    assert.ok(s2.running);
    assert.notEqual(s2.pid, pid);
    assert.equal(s2.fingerprint, fingerprint);
    assert.equal((await wellKnown(s2.port)).fingerprint, fingerprint);
    const bobAgain = await connectUser(s2, 'bob', { identity: bob.identity, register: false });
    assert.equal(bobAgain.server.fingerprint, fingerprint);
    bobAgain.close();
  });
});
