import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connectUser, inbox, startServer } from '../helpers/servers.js';

type Server = Awaited<ReturnType<typeof startServer>>;

/**
 * The sender's own mailbox keeps a copy of what it sends only for its other devices. A new device starts
 * at the mailbox head, so with no other device a copy would only be written, then pruned.
 */
describe("the sender's own copy", () => {
  let server: Server;
  before(async () => {
    server = await startServer();
  });
  after(() => server.close());
  /** Mailbox positions handed out so far (AUTOINCREMENT): one per stored copy, pruned or not. */
  const positions = () =>
    Number(
      server.context.store.db.get<{ seq: number }>("SELECT seq FROM sqlite_sequence WHERE name = 'mailbox'")
        ?.seq ?? 0,
    );

  it('a sender with one device stores no copy; once it has a second device, that device gets every copy', async () => {
    const erin = await connectUser(server, 'erin');
    const frank = await connectUser(server, 'frank');
    const frankBox = inbox(frank);
    const before1 = positions();
    await erin.send('frank@a.test', 'from my only device');
    await frankBox.waitFor(1);
    assert.equal(positions() - before1, 1, "frank's copy only: none for a sender without other devices");

    const laptop = await connectUser(server, 'erin', {
      identity: erin.identity,
      device: 'laptop',
      register: false,
    });
    const laptopBox = inbox(laptop);
    await laptop.waitSynced();
    const before2 = positions();
    await erin.send('frank@a.test', 'now with a laptop');
    await laptopBox.waitFor(1);
    assert.equal(laptopBox.messages[0]?.text, 'now with a laptop');
    assert.equal(laptopBox.messages[0]?.outgoing, true);
    assert.equal(positions() - before2, 2, "frank's copy and erin's, for the laptop");
    await frankBox.waitFor(2);
    for (const c of [erin, frank, laptop]) c.close();
  });
});
