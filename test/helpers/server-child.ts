/**
 * A PMB server in its own process, for tests that kill it (SIGKILL) and start it again on the same data
 * dir. Prints one JSON line {url, fingerprint} when listening. Usage: node server-child.js DATA_DIR
 */
import { createServer, serverConfig } from '../../src/server/index.js';

const dataDir = process.argv[2];
if (!dataDir) throw new Error('usage: server-child DATA_DIR');
const server = createServer(
  serverConfig({ dataDir, domain: 'a.test', registration: 'open', logLevel: 'silent', port: 0 }),
);
await server.start();
process.stdout.write(`${JSON.stringify({ url: server.url, fingerprint: server.fingerprint })}\n`);
process.on('SIGTERM', () => {
  void server.close().then(() => {
    process.exitCode = 0;
  });
});
