/**
 * Child process: the ceiling of this stack. A bare `ws` server that pairs connections by URL
 * (`/?pair=<n>&role=send|recv`) and forwards every binary frame to the other side of the pair: the
 * sender's messages to the recipient, the recipient's acks back. No parsing, no storage.
 * Same line protocol as pmb-server.ts: prints {"url"}, exits when stdin ends.
 */
import { createInterface } from 'node:readline';
import { type WebSocket, WebSocketServer } from 'ws';

const pairs = new Map<string, { send?: WebSocket; recv?: WebSocket }>();
const wss = new WebSocketServer({
  host: '127.0.0.1',
  port: 0,
  perMessageDeflate: false,
  maxPayload: 256 * 1024,
});

wss.on('connection', (ws, req) => {
  const q = new URL(req.url ?? '/', 'ws://relay').searchParams;
  const pair = q.get('pair') ?? '';
  const role = q.get('role') === 'send' ? 'send' : 'recv';
  const entry = pairs.get(pair) ?? {};
  entry[role] = ws;
  pairs.set(pair, entry);
  const other = role === 'send' ? 'recv' : 'send';
  ws.on('message', (data, isBinary) => entry[other]?.send(data, { binary: isBinary }));
  ws.on('close', () => {
    if (entry[role] === ws) delete entry[role];
    if (!entry.send && !entry.recv) pairs.delete(pair);
  });
});

wss.on('listening', () => {
  const { port } = wss.address() as { port: number };
  process.stdout.write(`${JSON.stringify({ url: `ws://127.0.0.1:${port}` })}\n`);
});

const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  if (line.trim() === 'stats') process.stdout.write(`${JSON.stringify({ commits: 0 })}\n`);
});
lines.on('close', () => {
  for (const c of wss.clients) c.terminate();
  wss.close();
});
