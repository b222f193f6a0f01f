/**
 * Writes test/vectors/frames/*.json from a real conversation with a real server, and re-renders the
 * example blocks of docs/protocol.md from them. Run by hand after `npm run build`:
 *   node dist/test/protocol/generate-examples.js --write   (new conversation, new vectors, then the docs)
 *   node dist/test/protocol/generate-examples.js --docs    (docs only, from the vectors in the tree)
 * Without a flag it does nothing, because `node --test dist/test/` also runs every file under test/.
 *
 * Every frame is captured on the wire (pmb.v1.cbor), checked to re-encode to the very bytes that travelled,
 * validated against its schema, and stored in both encodings. The keys are test-only keys made here.
 */
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { PmbClient, type WebSocketFactory } from '../../src/client/index.js';
import { armorPublicKey, challengeAnswer, generateIdentity, readChallenge } from '../../src/crypto/index.js';
import { toHex } from '../../src/protocol/bytes.js';
import { cborCodec, encodeCbor } from '../../src/protocol/codec.js';
import { PmbError } from '../../src/protocol/errors.js';
import { LoginStart, METHODS, PUSHES } from '../../src/protocol/frames.js';
import { RawPeer } from '../helpers/raw.js';
import { inbox, startServer } from '../helpers/servers.js';
import {
  encodeBoth,
  FRAMES_DIR,
  type MethodVector,
  PROTOCOL_MD,
  type PushVector,
  renderExamples,
  schemaForType,
  vectorFile,
} from './examples.js';

type Frame = Record<string, unknown> & { type: string; id?: number };

/** A `ws` WebSocket that records every frame it sends and receives, as bytes. */
function capturing(log: { out: boolean; bytes: Uint8Array }[]): WebSocketFactory {
  const Base = WebSocket as unknown as WebSocketFactory;
  return class extends Base {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols);
      (this as unknown as WebSocket).on('message', (data: Buffer | ArrayBuffer | Buffer[]) => {
        const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
        log.push({ out: false, bytes: new Uint8Array(bytes) });
      });
    }

    override send(data: Uint8Array | string): void {
      assert.ok(data instanceof Uint8Array, 'the vectors are captured over pmb.v1.cbor');
      log.push({ out: true, bytes: new Uint8Array(data) });
      super.send(data);
    }
  } as unknown as WebSocketFactory;
}

class Wire {
  readonly log: { out: boolean; bytes: Uint8Array }[] = [];
  readonly WebSocket = capturing(this.log);

  /** Every captured frame, decoded, each checked to re-encode to the bytes that went over the wire. */
  frames(): Frame[] {
    return this.log.map(({ bytes }) => {
      const frame = cborCodec.decode(bytes) as Frame;
      assert.equal(
        toHex(encodeCbor(frame)),
        toHex(bytes),
        `${frame.type} does not re-encode to its wire bytes`,
      );
      return frame;
    });
  }

  request(type: string): { request: Frame; response: Frame } {
    const frames = this.frames();
    const request = frames.find((f) => f.type === type);
    if (!request) throw new Error(`no ${type} request was captured`);
    const response = frames.find((f) => f.id === request.id && f !== request && f.type !== 'error');
    if (!response) throw new Error(`no answer to ${type} was captured`);
    return { request, response };
  }

  push(type: string, pred: (f: Frame) => boolean = () => true): Frame {
    const frame = this.frames().find((f) => f.type === type && pred(f));
    if (!frame) throw new Error(`no ${type} push was captured`);
    return frame;
  }
}

function checked(frame: Frame): Frame {
  const schema = schemaForType(frame.type);
  if (!schema) throw new Error(`no schema for frame type ${frame.type}`);
  const parsed = schema.safeParse(frame);
  if (!parsed.success) throw new Error(`${frame.type} does not validate: ${parsed.error.message}`);
  return frame;
}

async function generate(): Promise<void> {
  const server = await startServer({ domain: 'example.test', registration: 'open' });
  try {
    const bobKeys = await generateIdentity({ userId: 'vector bob <bob@example.test>' });
    const aliceKeys = await generateIdentity({ userId: 'vector alice <alice@example.test>' });
    const connect = (wire: Wire, keys: typeof bobKeys, device: string) =>
      PmbClient.connect({
        url: server.url,
        WebSocket: wire.WebSocket,
        identity: keys.identity,
        device,
        encoding: 'cbor',
        agent: 'pmb-vectors/1',
      });

    // Bob registers and logs in on his phone.
    const bobWire = new Wire();
    const bob = await connect(bobWire, bobKeys, 'phone');
    const bobBox = inbox(bob);
    await bob.register('bob');
    await bob.login();
    await bob.waitSynced();

    // Alice registers, logs in on her laptop, looks Bob up and writes to him.
    const aliceWire = new Wire();
    const alice = await connect(aliceWire, aliceKeys, 'laptop');
    await alice.register('alice');
    await alice.login();
    await alice.waitSynced();
    await alice.lookup('bob@example.test');
    const text = 'Hello Bob! Grüße from the PMB frame vectors ✓';
    await alice.send('bob@example.test', text);
    // Alice's own copy is not pushed back to the connection that sent it (10.1): only Bob receives it.
    await bobBox.waitFor(1);
    await bob.flushAcks();
    await alice.flushAcks();
    // Alice publishes the next record of her chain: a location record naming the server she is on.
    await alice.moveHere();
    await alice.ping();
    // A request the server refuses: a second login on a connection that is logged in.
    await assert.rejects(
      alice.conn.request(LoginStart, { fingerprint: aliceKeys.identity.fingerprint, device: 'laptop' }),
      (e: unknown) => e instanceof PmbError && e.code === 'already_logged_in',
    );
    alice.close();
    bob.close();

    // Bob's phone comes back: everything up to its cursor was acknowledged, so it is synced at once.
    const bobAgainWire = new Wire();
    const bobAgain = await connect(bobAgainWire, bobKeys, 'phone');
    await bobAgain.login();
    await bobAgain.waitSynced();
    bobAgain.close();

    // A frame that is not a map is refused with an error about the connection (no request id).
    const raw = await RawPeer.open(server.url);
    await raw.hello();
    raw.send([1, 2, 3]);
    const connectionError = (await raw.next((f) => f.type === 'error')) as Frame;
    raw.close();

    const vectors = new Map<string, MethodVector | PushVector>();
    const method = (name: string, wire: Wire, description: string, extra: Record<string, unknown> = {}) => {
      const { request, response } = wire.request(name);
      vectors.set(name, {
        description,
        method: name,
        request: encodeBoth(checked(request)),
        response: encodeBoth(checked(response)),
        ...extra,
      });
      return { request, response };
    };

    const hello = method(
      'hello',
      aliceWire,
      "Alice's connection opens: versions offered, version chosen, the connection id her login answer is bound to.",
    );
    method(
      'register',
      aliceWire,
      'alice@example.test is registered: seq-1 binding signed by her key in the request; the response carries ' +
        "the same payload bytes with the registrar's (the server's) signature added.",
    );
    const start = method(
      'login.start',
      aliceWire,
      "The challenge is an OpenPGP message encrypted to Alice's key. accountSecretKey is an unprotected " +
        'TEST-ONLY key that opens it.',
      { accountSecretKey: aliceKeys.secretKeyArmored },
    );
    const secret = await readChallenge(aliceKeys.identity, start.response.challenge as Uint8Array);
    const serverFp = (hello.response.server as { fingerprint: string }).fingerprint;
    const answerInput = {
      secret,
      server: serverFp,
      connection: hello.response.connection as string,
      expires: start.response.expires as number,
    };
    const preimage = encodeCbor([
      'pmb-login-v1',
      secret,
      serverFp,
      answerInput.connection,
      answerInput.expires,
    ]);
    const answer = await challengeAnswer(answerInput);
    const finish = method(
      'login.finish',
      aliceWire,
      'The answer to the challenge of login.start.json on the connection of hello.json: ' +
        'SHA-256 of the CBOR array ["pmb-login-v1", secret, server fingerprint, connection, expires].',
      {
        derivation: {
          secret: toHex(secret),
          server: serverFp,
          connection: answerInput.connection,
          expires: answerInput.expires,
          preimage: toHex(preimage),
          answer: toHex(answer),
        },
      },
    );
    assert.equal(toHex(finish.request.answer as Uint8Array), toHex(answer));
    method(
      'lookup',
      aliceWire,
      'Alice resolves bob@example.test: key, signed records in chain order, the server that holds him, and ' +
        'the server records (with keys) of the servers his records name, which vouch for the registrar.',
    );
    method(
      'send',
      aliceWire,
      'Alice sends Bob a message; the response comes after the server committed it to disk.',
    );
    method(
      'record.publish',
      aliceWire,
      'Alice publishes the next record of her own chain (seq 2, prev = SHA-256 of the payload of her binding in ' +
        'register.json): a location record naming example.test and its server key, signed by her key.',
    );
    method('ack', bobWire, "Bob's phone acknowledges its mailbox up to and including seq.");
    method('ping', aliceWire, 'Liveness check.');

    const deliver = bobWire.push(
      'deliver',
      (f) => (f.envelope as { from: string }).from === aliceKeys.identity.fingerprint,
    );
    vectors.set('deliver', {
      description:
        "Alice's message arrives on Bob's phone. recipientSecretKey is an unprotected TEST-ONLY key that opens " +
        'the body; content is what it holds.',
      push: 'deliver',
      frames: [encodeBoth(checked(deliver))],
      recipientSecretKey: bobKeys.secretKeyArmored,
      senderPublicKey: armorPublicKey(aliceKeys.identity),
      content: bobBox.messages[0]?.content,
    });
    vectors.set('synced', {
      description:
        "Bob's phone logs in again: everything stored up to seq has been pushed (here: nothing new).",
      push: 'synced',
      frames: [encodeBoth(checked(bobAgainWire.push('synced')))],
    });
    const refused = aliceWire.push('error', (f) => f.code === 'already_logged_in');
    vectors.set('error', {
      description:
        'Frame 0 answers a request (login.start on a logged-in connection) and echoes its id; frame 1 is about ' +
        'the connection itself (a frame that is not a map), so it has no id.',
      push: 'error',
      frames: [encodeBoth(checked(refused)), encodeBoth(checked(connectionError))],
    });

    for (const name of [...METHODS.map((m) => m.name), ...PUSHES.map((p) => p.name)]) {
      if (!vectors.has(name)) throw new Error(`no vector for ${name}`);
    }
    await mkdir(FRAMES_DIR, { recursive: true });
    for (const [name, vector] of vectors) {
      await writeFile(vectorFile(name), `${JSON.stringify(vector, null, 2)}\n`);
    }
    console.log(`wrote ${vectors.size} frame vectors to ${fileURLToPath(FRAMES_DIR)}`);
  } finally {
    await server.close();
  }
}

async function updateDocs(): Promise<void> {
  const before = await readFile(PROTOCOL_MD, 'utf8');
  const after = await renderExamples(before);
  if (after !== before) await writeFile(PROTOCOL_MD, after);
  console.log(`${after === before ? 'unchanged' : 'updated'}: ${fileURLToPath(PROTOCOL_MD)}`);
}

if (process.argv.includes('--write')) {
  await generate();
  await updateDocs();
} else if (process.argv.includes('--docs')) {
  await updateDocs();
}
