import {
  generateIdentity,
  type Identity,
  type MessageContent,
  type PublicIdentity,
  readPublicIdentity,
} from '../../src/crypto/index.js';
import { randomBytes, toHex } from '../../src/protocol/bytes.js';

/** Test people, made once per test file: key generation is cheap but not free. */
export interface Person {
  name: string;
  me: Identity;
  pub: PublicIdentity;
}

async function person(name: string): Promise<Person> {
  const { identity } = await generateIdentity({ userId: `${name} <${name}@example.test>` });
  return { name, me: identity, pub: await readPublicIdentity(identity.publicKeyBytes) };
}

let cast: Promise<Record<'alice' | 'bob' | 'carol' | 'mallory', Person>> | undefined;

export function people(): Promise<Record<'alice' | 'bob' | 'carol' | 'mallory', Person>> {
  cast ??= (async () => {
    const [alice, bob, carol, mallory] = await Promise.all(['alice', 'bob', 'carol', 'mallory'].map(person));
    return { alice: alice!, bob: bob!, carol: carol!, mallory: mallory! };
  })();
  return cast;
}

export function newId(): string {
  return toHex(randomBytes(8));
}

export function chat(from: Person, to: Person[], text = 'hello'): MessageContent {
  return {
    v: 1,
    id: newId(),
    from: from.me.fingerprint,
    to: to.map((p) => p.me.fingerprint),
    ts: Date.now(),
    kind: 'msg',
    text,
  };
}

/** What a recipient expects, as taken from the envelope. */
export function envelopeOf(
  content: MessageContent,
  from: Person,
): { id: string; from: PublicIdentity; to: string[] } {
  return { id: content.id, from: from.pub, to: [...content.to] };
}
