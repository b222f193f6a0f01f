import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { PmbClient, type SeenStore, type WebSocketFactory } from '../../src/client/index.js';
import { generateIdentity, type Identity } from '../../src/crypto/index.js';
import type { EncodingName } from '../../src/protocol/version.js';
import { createServer, type PmbServer, type ServerConfig, serverConfig } from '../../src/server/index.js';

export const NodeWebSocket = WebSocket as unknown as WebSocketFactory;

export async function tempDir(
  prefix = 'pmb-test-',
): Promise<{ path: string; [Symbol.asyncDispose](): Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return { path, [Symbol.asyncDispose]: () => rm(path, { recursive: true, force: true }) };
}

/** A real server on port 0 in a temp dir; close() stops it and removes the dir. */
export async function startServer(
  overrides: Partial<ServerConfig> = {},
): Promise<PmbServer & { dir: string }> {
  const dir = overrides.dataDir ?? (await mkdtemp(join(tmpdir(), 'pmb-server-')));
  const server = createServer(
    serverConfig({
      dataDir: dir,
      domain: 'a.test',
      registration: 'open',
      logLevel: (process.env.TEST_LOG as 'debug') ?? 'silent',
      ...overrides,
    }),
  );
  await server.start();
  const close = server.close.bind(server);
  return Object.assign(server, {
    dir,
    async close() {
      await close();
      if (!overrides.dataDir) await rm(dir, { recursive: true, force: true });
    },
  });
}

export async function newIdentity(): Promise<Identity> {
  return (await generateIdentity()).identity;
}

/** A `ws` WebSocket factory with TLS options (e.g. a test CA to trust, the name the certificate holds). */
export function trustingWebSocket(tls: WebSocket.ClientOptions): WebSocketFactory {
  return class extends WebSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols, tls);
    }
  } as unknown as WebSocketFactory;
}

/** A `ws` WebSocket factory that keeps every socket it makes, for a test that must reach under the SDK. */
export function capturingWebSocket(): { WebSocket: WebSocketFactory; sockets: WebSocket[] } {
  const sockets: WebSocket[] = [];
  const Capturing = class extends WebSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols);
      sockets.push(this);
    }
  } as unknown as WebSocketFactory;
  return { WebSocket: Capturing, sockets };
}

export interface UserOptions {
  WebSocket?: WebSocketFactory;
  device?: string;
  encoding?: EncodingName;
  identity?: Identity;
  register?: boolean;
  invite?: string;
  /** What the device has shown (default: the SDK's in-memory set, per PmbClient). */
  seen?: SeenStore;
}

/** Connect (and by default register and log in) a user. */
export async function connectUser(
  server: { url: string },
  nick: string,
  opts: UserOptions = {},
): Promise<PmbClient> {
  const identity = opts.identity ?? (await newIdentity());
  const client = await PmbClient.connect({
    url: server.url,
    WebSocket: opts.WebSocket ?? NodeWebSocket,
    identity,
    device: opts.device ?? 'dev1',
    encoding: opts.encoding ?? 'cbor',
    ...(opts.seen ? { seen: opts.seen } : {}),
  });
  try {
    if (opts.register !== false) await client.register(nick, opts.invite ? { invite: opts.invite } : {});
    await client.login();
  } catch (err) {
    client.close();
    throw err;
  }
  return client;
}

/** Collect the messages a client receives. */
export function inbox(client: PmbClient): {
  messages: import('../../src/client/index.js').ReceivedMessage[];
  waitFor(n: number, ms?: number): Promise<void>;
} {
  const messages: import('../../src/client/index.js').ReceivedMessage[] = [];
  client.events.message = (m) => {
    messages.push(m);
  };
  return {
    messages,
    async waitFor(n, ms = 10_000) {
      const deadline = Date.now() + ms;
      while (messages.length < n) {
        if (Date.now() > deadline) throw new Error(`expected ${n} messages, got ${messages.length}`);
        await new Promise((r) => setTimeout(r, 10));
      }
    },
  };
}
