/**
 * A minimal XMPP client over plain TCP for the bench: in-band registration (XEP-0077), SASL PLAIN, resource
 * bind, initial presence, then `<message>` stanzas. No TLS (loopback, throwaway servers that allow it), no
 * XML parser: incoming stanzas are only scanned for `</message>` and the message's `id`, which is all the
 * bench needs, so the load generator spends about as little per message as the PMB side does.
 */
import { connect, type Socket } from 'node:net';

const STREAM_NS = "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'";

export interface XmppSession {
  socket: Socket;
  /** The bound full JID. */
  jid: string;
  /** Called with the id of every `<message>` received. */
  onMessage: (id: string) => void;
  send(xml: string): void;
  close(): void;
}

/** Open a stream, register `user` in band, log in with PLAIN, bind `resource` and send initial presence. */
export async function xmppLogin(
  port: number,
  domain: string,
  user: string,
  password: string,
  resource = 'bench',
  /**
   * localAddress: the source address (127.0.0.X): a bench opening thousands of connections spreads them over
   * several. existingOk: a retry after a broken attempt, whose registration may have gone through: an
   * account that already exists (`conflict`) is logged in to.
   */
  opts: { localAddress?: string; existingOk?: boolean } = {},
): Promise<XmppSession> {
  const socket = connect({
    host: '127.0.0.1',
    port,
    noDelay: true,
    ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
  });
  socket.setEncoding('utf8');
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  let buf = '';
  let waiter: { pattern: RegExp; resolve: (m: RegExpMatchArray) => void; reject: (e: Error) => void } | null =
    null;
  const check = () => {
    if (!waiter) return;
    // The server ended the stream: say so now rather than after the 10 s wait.
    const ended = /<stream:error>[\s\S]*?<\/stream:error>/.exec(buf);
    if (ended) {
      const w = waiter;
      waiter = null;
      w.reject(new Error(`${user}: the server closed the stream: ${ended[0]}`));
      return;
    }
    const m = buf.match(waiter.pattern);
    if (!m) return;
    buf = buf.slice((m.index ?? 0) + m[0].length);
    const w = waiter;
    waiter = null;
    w.resolve(m);
  };
  const onSetupData = (chunk: string) => {
    buf += chunk;
    check();
  };
  socket.on('data', onSetupData);
  socket.on('error', (err) => waiter?.reject(err));
  const expect = (pattern: RegExp, what: string) =>
    new Promise<RegExpMatchArray>((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`${user}: no ${what} in 10 s; got ${buf.slice(0, 300)}`));
      }, 10_000);
      waiter = {
        pattern,
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m);
        },
        reject: (e) => {
          clearTimeout(timer);
          socket.destroy();
          reject(e);
        },
      };
      check();
    });
  const open = () => socket.write(`<?xml version='1.0'?><stream:stream to='${domain}' ${STREAM_NS}>`);

  open();
  await expect(/<\/stream:features>/, 'stream features');
  socket.write(
    `<iq type='set' id='reg'><query xmlns='jabber:iq:register'><username>${user}</username>` +
      `<password>${password}</password></query></iq>`,
  );
  const reg = await expect(/<iq\b[^>]*\bid=['"]reg['"][^>]*?(\/>|>[\s\S]*?<\/iq>)/, 'registration answer');
  const registered = /type=['"]result['"]/.test(reg[0]) || (opts.existingOk && /<conflict\b/.test(reg[0]));
  if (!registered) {
    socket.destroy();
    throw new Error(`${user}: registration refused: ${reg[0]}`);
  }
  const plain = Buffer.from(`\0${user}\0${password}`).toString('base64');
  socket.write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${plain}</auth>`);
  const auth = await expect(/<(success|failure)\b[\s\S]*?(\/>|<\/\1>)/, 'SASL answer');
  if (auth[1] !== 'success') {
    socket.destroy();
    throw new Error(`${user}: authentication failed: ${auth[0]}`);
  }
  buf = '';
  open();
  await expect(/<\/stream:features>/, 'stream features after auth');
  socket.write(
    `<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>${resource}</resource></bind></iq>`,
  );
  const bound = await expect(/<jid>([^<]+)<\/jid>/, 'bound JID');
  socket.write('<presence/>');
  socket.off('data', onSetupData);

  // From here on, only messages matter: cut the stream at each </message> and read the id of that stanza.
  let rest = buf;
  const session: XmppSession = {
    socket,
    jid: bound[1] as string,
    onMessage: () => {},
    send(xml) {
      socket.write(xml);
    },
    close() {
      socket.destroy();
    },
  };
  socket.on('data', (chunk: string) => {
    rest += chunk;
    let end = rest.indexOf('</message>');
    while (end >= 0) {
      const stanza = rest.slice(rest.lastIndexOf('<message', end), end);
      const id = /^<message\b[^>]*?\bid=['"]([^'"]+)['"]/.exec(stanza)?.[1];
      if (id !== undefined) session.onMessage(id);
      rest = rest.slice(end + 10);
      end = rest.indexOf('</message>');
    }
    // Anything else (presence, pings) is dropped once no message can be open in it.
    if (rest.length > 65_536 && rest.lastIndexOf('<message') < 0) rest = '';
  });
  return session;
}
