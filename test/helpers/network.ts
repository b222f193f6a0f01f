import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { connect, createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LinksOptions } from '../../src/federation/links.js';
import { createServer, type PmbServer, type ServerConfig, serverConfig } from '../../src/server/index.js';
import { type PmbServeProcess, startPmbServe } from './child.js';

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
  /**
   * `in-process` (default): PmbServers in this process. `process`: real `node bin/pmb serve` children (dist
   * must be built), for kill -9 scenarios; they take no `links` or `config` options.
   */
  mode?: 'in-process' | 'process';
  /** In-process: server link options for every server (e.g. a short reconnect backoff). */
  links?: LinksOptions;
  /** In-process: config overrides for every server. */
  config?: Partial<ServerConfig>;
  /** Process mode: how long each child may take to answer /.well-known/pmb (default 20 s). */
  readyTimeoutMs?: number;
}

/** One server of the network, the same in both modes; its fields follow restarts. */
export interface NetworkNode {
  readonly index: number;
  /** s{index+1}.test */
  readonly domain: string;
  /** Its own port: clients connect here; its peers reach it through the proxies. */
  readonly port: number;
  /** ws://127.0.0.1:port, for clients. */
  readonly url: string;
  /** The server key's fingerprint, as it last started. */
  readonly fingerprint: string;
  readonly dataDir: string;
  readonly running: boolean;
}

export interface InProcessNode extends NetworkNode {
  /** The current PmbServer (the closed one while stopped). */
  readonly server: PmbServer;
}

export interface ProcessNode extends NetworkNode {
  /** The pid of the running child, undefined while it is down. */
  readonly pid: number | undefined;
  /** Its stdout and stderr (JSON logs), the last lines of the current or last child. */
  readonly output: readonly string[];
}

interface NetworkBase<Node extends NetworkNode> {
  readonly domains: string[];
  readonly nodes: Node[];
  /** The resolve map server i was given: every peer, at the proxy from i to it. */
  resolve(i: number): Record<string, string>;
  /**
   * Cut all traffic between servers i and j, both ways: the proxied connections are destroyed (open
   * links drop) and new ones are destroyed as they arrive, until heal.
   */
  partition(i: number, j: number): void;
  /** Partition i from every other server. */
  isolate(i: number): void;
  /** heal(i, j): that pair; heal(i): every pair with i; heal(): every pair. */
  heal(i?: number, j?: number): void;
  /** Whether traffic between i and j is cut. */
  isCut(i: number, j: number): boolean;
  /** Stop server i cleanly (SIGTERM in process mode); its port and data dir are kept. */
  stop(i: number): Promise<void>;
  /** Stop every server, close the proxies, remove the data dirs. Safe to call twice. */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export interface TestNetwork extends NetworkBase<InProcessNode> {
  readonly mode: 'in-process';
  /** servers[i] is s{i+1}.test (replaced by restart). */
  readonly servers: PmbServer[];
  /** Start server i again on the same port and data dir (stopping it first if it runs). */
  restart(i: number): Promise<PmbServer>;
}

export interface ProcessNetwork extends NetworkBase<ProcessNode> {
  readonly mode: 'process';
  /** Start server i again on the same port and data dir (stopping it first if it runs). */
  restart(i: number): Promise<ProcessNode>;
  /** Send `signal` to server i's process and wait for it to die; its data dir is kept. */
  kill(i: number, signal?: NodeJS.Signals): Promise<void>;
}

/**
 * n servers s1.test..sn.test on fixed free ports with open registration. Each reaches each other one through
 * a TCP proxy of its own (one per directed pair), named in its resolve map, so a pair can be partitioned.
 */
export function startNetwork(n: number, opts: NetworkOptions & { mode: 'process' }): Promise<ProcessNetwork>;
export function startNetwork(
  n: number,
  opts?: NetworkOptions & { mode?: 'in-process' },
): Promise<TestNetwork>;
export async function startNetwork(
  n: number,
  opts: NetworkOptions = {},
): Promise<TestNetwork | ProcessNetwork> {
  if (opts.mode === 'process' && (opts.links || opts.config)) {
    throw new Error(
      'startNetwork: process mode takes no links or config options (pmb serve has no flags for them)',
    );
  }
  const root = await mkdtemp(join(tmpdir(), 'pmb-net-'));
  const domains = Array.from({ length: n }, (_, i) => `s${i + 1}.test`);
  const dirs = domains.map((d) => join(root, d));
  const proxies = new Map<string, PairProxy>();
  const cleanup = async () => {
    await Promise.allSettled([...proxies.values()].map((p) => p.close()));
    await rm(root, { recursive: true, force: true });
  };
  try {
    const ports: number[] = [];
    for (let i = 0; i < n; i++) ports.push(await freePort());
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        if (i === j) continue;
        const proxy = new PairProxy(() => ports[j] as number);
        proxies.set(`${i}>${j}`, proxy);
        await proxy.listen();
      }
    }
    const resolve = (i: number) => {
      const map: Record<string, string> = {};
      domains.forEach((d, j) => {
        if (j !== i) map[d] = `127.0.0.1:${proxies.get(`${i}>${j}`)?.port}`;
      });
      return map;
    };
    const fabric = { n, domains, dirs, ports, resolve, proxies, root, teardown: cleanup };
    return opts.mode === 'process'
      ? await processNetwork(fabric, opts)
      : await inProcessNetwork(fabric, opts);
  } catch (err) {
    await cleanup();
    throw err;
  }
}

interface Fabric {
  n: number;
  domains: string[];
  dirs: string[];
  ports: number[];
  resolve(i: number): Record<string, string>;
  proxies: Map<string, PairProxy>;
  /** Where the data dirs (and a process network's HOME) live. */
  root: string;
  /** Closes the proxies and removes root. */
  teardown(): Promise<void>;
}

/** partition/heal/isolate/isCut/resolve and the teardown, shared by both modes. */
function cuts(f: Fabric) {
  const at = (i: number) => {
    if (!Number.isInteger(i) || i < 0 || i >= f.n)
      throw new RangeError(`no server ${i} in a network of ${f.n}`);
  };
  const pair = (i: number, j: number): [PairProxy, PairProxy] => {
    at(i);
    at(j);
    if (i === j) throw new RangeError(`server ${i} cannot be partitioned from itself`);
    return [f.proxies.get(`${i}>${j}`) as PairProxy, f.proxies.get(`${j}>${i}`) as PairProxy];
  };
  const others = (i: number) => f.domains.map((_, j) => j).filter((j) => j !== i);
  return {
    domains: f.domains,
    resolve(i: number) {
      at(i);
      return f.resolve(i);
    },
    partition(i: number, j: number) {
      for (const p of pair(i, j)) p.sever();
    },
    isolate(i: number) {
      at(i);
      for (const j of others(i)) for (const p of pair(i, j)) p.sever();
    },
    heal(i?: number, j?: number) {
      if (i === undefined) for (const p of f.proxies.values()) p.mend();
      else if (j === undefined) for (const k of others(i)) for (const p of pair(i, k)) p.mend();
      else for (const p of pair(i, j)) p.mend();
    },
    isCut(i: number, j: number) {
      return pair(i, j)[0].cut;
    },
    at,
    teardown: f.teardown,
  };
}

async function inProcessNetwork(f: Fabric, opts: NetworkOptions): Promise<TestNetwork> {
  const c = cuts(f);
  const make = (i: number) =>
    createServer(
      serverConfig({
        dataDir: f.dirs[i] as string,
        domain: f.domains[i] as string,
        host: '127.0.0.1',
        port: f.ports[i] as number,
        registration: 'open',
        logLevel: (process.env.TEST_LOG as 'debug') ?? 'silent',
        resolve: f.resolve(i),
        ...opts.config,
      }),
      opts.links ? { links: opts.links } : {},
    );
  const servers: PmbServer[] = [];
  const fingerprints: string[] = [];
  const running = new Set<number>();
  const start = async (i: number, firstTime = false) => {
    for (let attempt = 0; ; attempt++) {
      const s = make(i);
      servers[i] = s;
      try {
        await s.start();
      } catch (err) {
        await s.close().catch(() => {});
        // freePort() released the port before the server took it: on a busy box someone else may have.
        if (!firstTime || attempt >= 4 || (err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
        f.ports[i] = await freePort();
        continue;
      }
      running.add(i);
      fingerprints[i] = s.fingerprint;
      return s;
    }
  };
  const stop = async (i: number) => {
    c.at(i);
    if (!running.has(i)) return;
    running.delete(i);
    await servers[i]?.close();
  };
  try {
    for (let i = 0; i < f.n; i++) await start(i, true);
  } catch (err) {
    for (const i of running) await servers[i]?.close();
    throw err;
  }
  const nodes: InProcessNode[] = f.domains.map((domain, index) => ({
    index,
    domain,
    get port() {
      return f.ports[index] as number;
    },
    dataDir: f.dirs[index] as string,
    get url() {
      return (servers[index] as PmbServer).url;
    },
    get fingerprint() {
      return fingerprints[index] as string;
    },
    get running() {
      return running.has(index);
    },
    get server() {
      return servers[index] as PmbServer;
    },
  }));
  let closed = false;
  const net: TestNetwork = {
    mode: 'in-process',
    domains: c.domains,
    nodes,
    servers,
    resolve: c.resolve,
    partition: c.partition,
    isolate: c.isolate,
    heal: c.heal,
    isCut: c.isCut,
    stop,
    async restart(i) {
      await stop(i);
      return start(i);
    },
    async close() {
      if (closed) return;
      closed = true;
      await Promise.allSettled([...running].map((i) => stop(i)));
      await c.teardown();
    },
    [Symbol.asyncDispose]() {
      return net.close();
    },
  };
  return net;
}

async function processNetwork(f: Fabric, opts: NetworkOptions): Promise<ProcessNetwork> {
  const c = cuts(f);
  const home = join(f.root, 'home');
  await mkdir(home);
  const children: (PmbServeProcess | undefined)[] = [];
  const last: (PmbServeProcess | undefined)[] = [];
  const start = async (i: number, firstTime = false) => {
    let child: PmbServeProcess | undefined;
    for (let attempt = 0; !child; attempt++) {
      try {
        child = await startPmbServe({
          domain: f.domains[i] as string,
          port: f.ports[i] as number,
          dataDir: f.dirs[i] as string,
          home,
          resolve: f.resolve(i),
          registration: 'open',
          ...(opts.readyTimeoutMs ? { readyTimeoutMs: opts.readyTimeoutMs } : {}),
        });
      } catch (err) {
        // freePort() released the port before the child took it: on a busy box someone else may have.
        if (!firstTime || attempt >= 4 || !/EADDRINUSE/.test(String((err as Error).message))) throw err;
        f.ports[i] = await freePort();
      }
    }
    children[i] = child;
    last[i] = child;
    void child.exited.then(() => {
      if (children[i] === child) children[i] = undefined;
    });
  };
  const stopAll = () =>
    Promise.allSettled(
      children.map((ch, i) => {
        children[i] = undefined;
        return ch?.stop(5000);
      }),
    );
  const started = await Promise.allSettled(f.domains.map((_, i) => start(i, true)));
  const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    await stopAll();
    throw failed.reason;
  }
  const nodes: ProcessNode[] = f.domains.map((domain, index) => ({
    index,
    domain,
    get port() {
      return f.ports[index] as number;
    },
    get url() {
      return `ws://127.0.0.1:${f.ports[index]}`;
    },
    dataDir: f.dirs[index] as string,
    get fingerprint() {
      return last[index]?.fingerprint as string;
    },
    get running() {
      return children[index] !== undefined;
    },
    get pid() {
      return children[index]?.proc.pid;
    },
    get output() {
      return last[index]?.output ?? [];
    },
  }));
  const stop = async (i: number) => {
    c.at(i);
    const child = children[i];
    children[i] = undefined;
    await child?.stop();
  };
  let closed = false;
  const net: ProcessNetwork = {
    mode: 'process',
    domains: c.domains,
    nodes,
    resolve: c.resolve,
    partition: c.partition,
    isolate: c.isolate,
    heal: c.heal,
    isCut: c.isCut,
    stop,
    async kill(i, signal = 'SIGKILL') {
      c.at(i);
      const child = children[i];
      if (!child) throw new Error(`${f.domains[i]} is not running`);
      children[i] = undefined;
      await child.kill(signal);
    },
    async restart(i) {
      await stop(i);
      await start(i);
      return nodes[i] as ProcessNode;
    },
    async close() {
      if (closed) return;
      closed = true;
      await stopAll();
      await c.teardown();
    },
    [Symbol.asyncDispose]() {
      return net.close();
    },
  };
  return net;
}

/**
 * A TCP proxy from one server to one peer: 127.0.0.1:port -> 127.0.0.1:targetPort. While severed it
 * destroys what it carries and every new connection (the peer looks unreachable); mend lets them through.
 */
class PairProxy {
  readonly #server: NetServer;
  readonly #sockets = new Set<Socket>();
  #cut = false;
  port = 0;

  /** The target is read at each connection: a server that had to take another port is still reached. */
  constructor(readonly target: () => number) {
    this.#server = createNetServer((client) => this.#carry(client));
  }

  get cut(): boolean {
    return this.#cut;
  }

  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(0, '127.0.0.1', () => {
        const addr = this.#server.address();
        this.port = typeof addr === 'object' && addr ? addr.port : 0;
        resolve();
      });
    });
  }

  #carry(client: Socket): void {
    if (this.#cut) {
      client.destroy();
      return;
    }
    const upstream = connect(this.target(), '127.0.0.1');
    for (const [a, b] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      this.#sockets.add(a);
      a.on('error', () => b.destroy());
      a.on('close', (hadError) => {
        this.#sockets.delete(a);
        if (hadError) b.destroy();
        else b.end();
      });
      a.pipe(b);
    }
  }

  sever(): void {
    this.#cut = true;
    for (const s of this.#sockets) s.destroy();
    this.#sockets.clear();
  }

  mend(): void {
    this.#cut = false;
  }

  close(): Promise<void> {
    this.sever();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }
}

/** Link every pair of in-process servers (a full mesh), each pair opened by the lower-numbered one. */
export async function linkAll(net: TestNetwork): Promise<void> {
  for (const [i, s] of net.servers.entries()) {
    for (const d of net.domains.slice(i + 1)) await s.context.links.connect(d);
  }
}
