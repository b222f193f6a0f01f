import { mkdtemp, rm } from 'node:fs/promises';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LinksOptions } from '../../src/federation/links.js';
import { createServer, type PmbServer, type ServerConfig, serverConfig } from '../../src/server/index.js';

/** A free TCP port on 127.0.0.1 (listen on port 0, read it, close). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createNetServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export interface NetworkOptions {
  /** Server link options for every server (e.g. a short reconnect backoff). */
  links?: LinksOptions;
  config?: Partial<ServerConfig>;
}

export interface TestNetwork {
  /** servers[i] is s{i+1}.test. */
  readonly servers: PmbServer[];
  readonly domains: string[];
  /** Stop server i (its port and data dir are kept). */
  stop(i: number): Promise<void>;
  /** Start server i again on the same port and data dir. */
  restart(i: number): Promise<PmbServer>;
  close(): Promise<void>;
}

/**
 * n in-process servers s1.test..sn.test on fixed free ports, each with a resolve map naming all the others,
 * open registration and silent logs.
 */
export async function startNetwork(n: number, opts: NetworkOptions = {}): Promise<TestNetwork> {
  const ports: number[] = [];
  for (let i = 0; i < n; i++) ports.push(await freePort());
  const domains = ports.map((_, i) => `s${i + 1}.test`);
  const dirs = await Promise.all(ports.map(() => mkdtemp(join(tmpdir(), 'pmb-net-'))));
  const make = (i: number) => {
    const resolve: Record<string, string> = {};
    domains.forEach((d, j) => {
      if (j !== i) resolve[d] = `127.0.0.1:${ports[j]}`;
    });
    return createServer(
      serverConfig({
        dataDir: dirs[i] as string,
        domain: domains[i] as string,
        host: '127.0.0.1',
        port: ports[i] as number,
        registration: 'open',
        logLevel: (process.env.TEST_LOG as 'debug') ?? 'silent',
        resolve,
        ...opts.config,
      }),
      opts.links ? { links: opts.links } : {},
    );
  };
  const servers: PmbServer[] = [];
  const running = new Set<number>();
  try {
    for (let i = 0; i < n; i++) {
      const s = make(i);
      servers.push(s);
      await s.start();
      running.add(i);
    }
  } catch (err) {
    for (const i of running) await servers[i]?.close();
    throw err;
  }
  return {
    servers,
    domains,
    async stop(i) {
      if (!running.has(i)) return;
      running.delete(i);
      await servers[i]?.close();
    },
    async restart(i) {
      if (running.has(i)) {
        running.delete(i);
        await servers[i]?.close();
      }
      const s = make(i);
      servers[i] = s;
      await s.start();
      running.add(i);
      return s;
    },
    async close() {
      await Promise.all([...running].map((i) => servers[i]?.close()));
      running.clear();
      await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
    },
  };
}
