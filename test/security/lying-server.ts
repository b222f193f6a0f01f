import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import * as openpgp from 'openpgp';
import WebSocket, { type RawData, WebSocketServer } from 'ws';
import { PmbClient } from '../../src/client/index.js';
import type { Identity, MessageContent, PublicIdentity } from '../../src/crypto/index.js';
import { codecForSubprotocol, encodeCbor } from '../../src/protocol/codec.js';
import type { Envelope } from '../../src/protocol/frames.js';
import type { PmbServer } from '../../src/server/index.js';
import type { Frame } from '../helpers/raw.js';
import { NodeWebSocket } from '../helpers/servers.js';

/**
 * A lying server: a real server behind a proxy that rewrites what the server says. `toClient` sees every
 * frame the server sends and returns the frames the client gets instead (none, the same, or more). The
 * login still works through it: the proxy passes hello.ok on, so the answer is bound to the real server
 * and connection, as a malicious server's own would be.
 */
export async function lyingServer(
  server: { url: string },
  toClient: (f: Frame) => Frame[],
): Promise<{ url: string; close(): Promise<void> }> {
  const wss = new WebSocketServer({
    host: '127.0.0.1',
    port: 0,
    handleProtocols: (offered) => [...offered][0] ?? false,
  });
  await once(wss, 'listening');
  wss.on('connection', (client) => {
    const codec = codecForSubprotocol(client.protocol);
    if (!codec) return client.close();
    const upstream = new WebSocket(server.url, codec.subprotocol);
    const early: RawData[] = [];
    client.on('message', (data) => {
      if (upstream.readyState === WebSocket.OPEN) upstream.send(data as Buffer);
      else early.push(data);
    });
    upstream.on('open', () => {
      for (const d of early.splice(0)) upstream.send(d as Buffer);
    });
    upstream.on('message', (data: Buffer, isBinary) => {
      const frame = codec.decode(isBinary ? new Uint8Array(data) : data.toString('utf8')) as Frame;
      for (const f of toClient(frame)) client.send(codec.encode(f));
    });
    upstream.on('close', () => client.close());
    upstream.on('error', () => client.terminate());
    client.on('close', () => upstream.close());
  });
  return {
    url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`,
    async close() {
      for (const c of wss.clients) c.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}

/**
 * The server puts an envelope of its own making into the mailboxes of `to` (accounts it hosts), as it
 * would a message someone sent: stored, then pushed to their devices.
 */
export async function inject(server: PmbServer, envelope: Envelope, to: string[]): Promise<void> {
  const r = await server.context.mail.store(envelope, { local: to, remote: new Map() });
  if (r.duplicate) throw new Error(`the store already holds ${envelope.from}/${envelope.id}`);
}

/** An OpenPGP body over `content` made by hand: signed by `signer` (or not signed), encrypted to `readers`. */
export async function handMadeBody(
  content: MessageContent,
  readers: PublicIdentity[],
  signer?: Identity,
): Promise<Uint8Array> {
  return openpgp.encrypt({
    message: await openpgp.createMessage({ binary: encodeCbor(content) }),
    encryptionKeys: readers.map((r) => r.publicKey),
    ...(signer ? { signingKeys: signer.privateKey } : {}),
    format: 'binary',
  });
}

/** Every envelope a client refuses, with the code, and every message it shows. */
export function watch(client: PmbClient) {
  const shown: { id: string; from: string; text: string | undefined; outgoing: boolean }[] = [];
  const refused: { id: string; code: string }[] = [];
  client.events.message = (m) => {
    shown.push({ id: m.id, from: m.from, text: m.text, outgoing: m.outgoing });
  };
  client.events.rejected = (envelope, err) => {
    refused.push({ id: envelope.id, code: err.code });
  };
  return { shown, refused };
}

/** A PmbClient for `identity` logged in through `url` (a lying server) as `device`. */
export async function loginThrough(url: string, identity: Identity, device: string): Promise<PmbClient> {
  const client = await PmbClient.connect({ url, WebSocket: NodeWebSocket, identity, device });
  await client.login();
  return client;
}
