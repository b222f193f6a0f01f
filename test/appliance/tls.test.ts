import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import WebSocket from 'ws';
import { resolveConfig } from '../../src/appliance/config.js';
import { checkTls } from '../../src/appliance/doctor.js';
import { startAppliance } from '../../src/appliance/start.js';
import { PmbClient, type WebSocketFactory } from '../../src/client/index.js';
import { connectUser, inbox, newIdentity, tempDir, trustingWebSocket } from '../helpers/servers.js';
import { selfSigned } from '../helpers/tls.js';

function hasOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe('TLS', () => {
  it('openssl is installed (the certificates below are made with it; .ci/run installs it)', () => {
    assert.ok(hasOpenssl(), 'openssl is missing: apt-get install openssl');
  });

  it('serves wss:// with tls.cert/tls.key; the SDK connects with the certificate trusted', async () => {
    await using dir = await tempDir();
    const tls = selfSigned(dir.path, 'tls.test');
    const resolved = resolveConfig({
      flags: {
        dataDir: join(dir.path, 'data'),
        port: '0',
        domain: 'tls.test',
        registration: 'open',
        logLevel: 'silent',
        tlsCert: tls.cert,
        tlsKey: tls.key,
      },
      env: {},
      systemFile: '/nonexistent/pmb.toml',
    });
    const { server } = await startAppliance(resolved);
    try {
      assert.match(server.url, /^wss:\/\/127\.0\.0\.1:\d+$/);
      const ca = await readFile(tls.cert);
      // The SDK takes a WebSocket factory: this one trusts our self-signed certificate.
      const TrustingWS = trustingWebSocket({ ca } as WebSocket.ClientOptions);
      const alice = await connectUser(server, 'alice', { WebSocket: TrustingWS });
      const bob = await connectUser(server, 'bob', { WebSocket: TrustingWS });
      const got = inbox(bob);
      await alice.send('bob@tls.test', 'over wss');
      await got.waitFor(1);
      assert.equal(got.messages[0]?.text, 'over wss');
      alice.close();
      bob.close();

      // Without the certificate trusted, the connection is refused: nothing falls back to plain text.
      await assert.rejects(
        PmbClient.connect({
          url: server.url,
          WebSocket: WebSocket as unknown as WebSocketFactory,
          identity: await newIdentity(),
          device: 'dev1',
        }),
        /Cannot connect/,
      );

      // pmb doctor's TLS check: key matches, valid for the domain, ~30 days left.
      const check = await checkTls({ config: resolved.config, env: {} });
      assert.equal(!Array.isArray(check) && check.status, 'ok');
      assert.match(JSON.stringify(check), /certificate for tls\.test, valid for 2\d more days/);
      const other = selfSigned(dir.path, 'other.test');
      const wrongHost = await checkTls({ config: { ...resolved.config, tls: other }, env: {} });
      assert.match(JSON.stringify(wrongHost), /"status":"fail".*not tls\.test/);
      const wrongKey = await checkTls({
        config: { ...resolved.config, tls: { cert: tls.cert, key: other.key } },
        env: {},
      });
      assert.match(JSON.stringify(wrongKey), /"status":"fail".*is not the key of/);
    } finally {
      await server.close();
    }
  });
});
