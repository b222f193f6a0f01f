/**
 * What the test releases run: the real PMB server, told which version it is (as a release binary knows
 * its own). A release "binary" in the upgrade tests is a shell script that execs this with its version
 * baked in. Usage: node release-payload.js --version V --data-dir DIR --port P
 */
import { parseArgs } from 'node:util';
import { createServer, serverConfig } from '../../src/server/index.js';

const { values } = parseArgs({
  options: { version: { type: 'string' }, 'data-dir': { type: 'string' }, port: { type: 'string' } },
});
if (!values.version || !values['data-dir'] || !values.port) {
  throw new Error('usage: release-payload --version V --data-dir DIR --port P');
}
const server = createServer(
  serverConfig({
    dataDir: values['data-dir'],
    domain: 'a.test',
    registration: 'open',
    logLevel: 'silent',
    port: Number(values.port),
    version: values.version,
  }),
);
await server.start();
process.stdout.write(`${JSON.stringify({ url: server.url, version: values.version })}\n`);
process.on('SIGTERM', () => {
  void server.close().then(() => {
    process.exitCode = 0;
  });
});
