import { open, readFile, rm } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import type { Command } from 'commander';
import type { Identity } from '../../crypto/index.js';
import { type CliContext, note, print, printJson } from '../context.js';
import { CliError } from '../errors.js';
import { ensureDir, isNotFound, writeFileAtomic } from '../files.js';
import { type ClientOptions, clientOptions, openProfile, parseIntOption } from '../options.js';
import { newDeviceId, noIdentity, type Profile } from '../profile.js';
import type { Session } from '../session.js';

export function register(program: Command, ctx: CliContext): void {
  const id = program.command('id').description('your identity: the key pair that is your account');

  clientOptions(id.command('new'))
    .description('make a new key pair in this profile (protected if a passphrase is given)')
    .action(async (opts: ClientOptions) => {
      const { createIdentity, readPassphrase } = await import('../identity.js');
      const profile = await openProfile(ctx, opts);
      const passphrase = await readPassphrase(opts, ctx.env);
      const identity = await createIdentity(profile, passphrase);
      const device = await profile.device();
      if (opts.json) {
        printJson(ctx, {
          fingerprint: identity.fingerprint,
          device,
          profile: profile.dir,
          protected: !!passphrase,
        });
      } else {
        print(ctx, `New identity ${identity.fingerprint}${passphrase ? ' (passphrase-protected)' : ''}`);
        print(ctx, `Saved in ${profile.dir}. Next: pmb register NICK@DOMAIN --server URL`);
      }
    });

  clientOptions(id.command('show'))
    .description('fingerprint, address, servers and device id of this profile')
    .action(async (opts: ClientOptions) => {
      const profile = await openProfile(ctx, opts);
      const fingerprint = await profileFingerprint(profile);
      const d = profile.data;
      const servers = d.server ? [d.server, ...d.backupServers] : d.backupServers;
      if (opts.json) {
        printJson(ctx, {
          fingerprint,
          addresses: d.address ? [d.address] : [],
          server: d.server ?? null,
          serverFingerprint: d.serverFingerprint ?? null,
          backupServers: d.backupServers,
          device: d.device ?? null,
          profile: profile.dir,
        });
        return;
      }
      print(ctx, `fingerprint  ${fingerprint}`);
      print(ctx, `address      ${d.address ?? '(not registered: pmb register NICK@DOMAIN --server URL)'}`);
      print(ctx, `servers      ${servers.length ? servers.join(', ') : '(none)'}`);
      if (d.serverFingerprint) print(ctx, `server key   ${d.serverFingerprint}`);
      print(ctx, `device       ${d.device ?? '(none)'}`);
      print(ctx, `profile      ${profile.dir}`);
    });

  clientOptions(id.command('export'))
    .description('print the public key, or with --secret the secret key (to copy to another device)')
    .option('--secret', 'export the secret key, as stored (passphrase-protected if it is)')
    .option('--out <file>', 'write to a file instead of stdout (mode 0600 for a secret key)')
    .action(async (opts: ClientOptions & { secret?: boolean; out?: string }) => {
      const { inspectSecretKey } = await import('../identity.js');
      const profile = await openProfile(ctx, opts);
      const armored = await profile.readSecretKey();
      if (armored === undefined) throw noIdentity(profile);
      const info = await inspectSecretKey(armored);
      const text = opts.secret ? info.armored : info.publicArmored;
      if (opts.out) {
        await writeFileAtomic(opts.out, text, opts.secret ? 0o600 : 0o644);
        if (opts.json)
          printJson(ctx, { fingerprint: info.fingerprint, secret: !!opts.secret, file: opts.out });
        else
          note(
            ctx,
            `Wrote the ${opts.secret ? 'SECRET' : 'public'} key of ${info.fingerprint} to ${opts.out}`,
          );
      } else if (opts.json) {
        printJson(ctx, { fingerprint: info.fingerprint, secret: !!opts.secret, key: text });
      } else {
        ctx.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
      }
      if (opts.secret && !info.locked) {
        note(ctx, 'pmb: this secret key has no passphrase: keep the copy somewhere only you can read');
      }
    });

  clientOptions(id.command('import'))
    .description(
      'use a secret key exported from another device: this profile becomes another device of that account',
    )
    .argument('<file>', 'the file written by "pmb id export --secret"')
    .option('--force', 'replace an identity this profile already has')
    .action(async (file: string, opts: ClientOptions & { force?: boolean }) => {
      const { inspectSecretKey, readPassphrase, unlock } = await import('../identity.js');
      const profile = await openProfile(ctx, opts);
      let bytes: Buffer;
      try {
        bytes = await readFile(file);
      } catch (err) {
        if (isNotFound(err)) throw new CliError('usage', `No such file: ${file}`, 2);
        throw err;
      }
      const text = bytes.toString('utf8');
      const input = text.includes('-----BEGIN PGP') ? text : new Uint8Array(bytes);
      const info = await inspectSecretKey(input);
      // Unlocking proves the key is whole and, if protected, that the passphrase is right.
      await unlock(input, await readPassphrase(opts, ctx.env));
      const existing = await profile.readSecretKey();
      if (existing !== undefined && !opts.force) {
        const current = (await inspectSecretKey(existing)).fingerprint;
        if (current !== info.fingerprint) {
          throw new CliError(
            'identity_exists',
            `${profile.dir} already has another identity (${current}); use another --profile, or --force to replace it`,
          );
        }
      }
      await profile.writeSecretKey(info.armored);
      const data = await profile.update((d) => {
        if (d.fingerprint !== info.fingerprint) {
          d.address = undefined;
          d.server = undefined;
          d.serverFingerprint = undefined;
        }
        d.fingerprint = info.fingerprint;
        // A fresh device id: two devices must never share a mailbox cursor.
        d.device = newDeviceId();
      });
      if (opts.json) {
        printJson(ctx, {
          fingerprint: info.fingerprint,
          device: data.device,
          profile: profile.dir,
          protected: info.locked,
        });
      } else {
        print(ctx, `Imported identity ${info.fingerprint} as device ${data.device}`);
        print(ctx, 'Next: pmb login --server URL');
      }
    });

  clientOptions(id.command('recovery-key'))
    .description(
      'make an offline recovery key and publish it: with it you can take the account back from someone who stole your key',
    )
    .option(
      '--out <file>',
      'where to write the recovery SECRET key (default: ./pmb-recovery-<fingerprint>.asc)',
    )
    .option(
      '--window-days <n>',
      'how many days a record stays open to an override by the recovery key',
      parseIntOption('--window-days', 1, MAX_WINDOW_DAYS),
      DEFAULT_WINDOW_DAYS,
    )
    .action(async (opts: ClientOptions & { out?: string; windowDays: number }) => {
      const { Session } = await import('../session.js');
      const { decodeRecord, generateIdentity } = await import('../../crypto/index.js');
      const profile = await openProfile(ctx, opts);
      const session = await Session.open(ctx, { ...opts, profile, login: true });
      try {
        const account = session.identity.fingerprint;
        const { identity: recovery, secretKeyArmored } = await generateIdentity({
          userId: `pmb recovery key of ${account}`,
        });
        const file = resolve(opts.out ?? `pmb-recovery-${recovery.fingerprint.slice(0, 16)}.asc`);
        // The file first: a published key whose secret was never written would be a lock without a key.
        await writeNewSecret(file, secretKeyArmored);
        let seq: number;
        try {
          const record = await session.client.publish('recovery', {
            key: recovery.publicKeyBytes,
            windowDays: opts.windowDays,
          });
          seq = decodeRecord(record).seq;
        } catch (err) {
          note(
            ctx,
            `pmb: publishing failed, so the key in ${file} may not be in force: delete it and run this again`,
          );
          throw err;
        }
        if (opts.json) {
          printJson(ctx, {
            fingerprint: recovery.fingerprint,
            account,
            file,
            seq,
            windowDays: opts.windowDays,
          });
          return;
        }
        print(ctx, `Recovery key ${recovery.fingerprint}`);
        print(
          ctx,
          `written to ${file} (readable by you only) and published as record ${seq} of your identity.`,
        );
        print(
          ctx,
          `With it, records made with your daily key can be overridden for ${opts.windowDays} days after they are made: pmb id recover --recovery-key FILE`,
        );
        print(
          ctx,
          'KEEP IT OFFLINE: print it or copy it to a USB stick in a drawer, then delete it from this computer.',
        );
        print(ctx, 'Whoever holds it can take your account; it has no passphrase.');
      } finally {
        await session.close();
      }
    });

  clientOptions(id.command('recover'))
    .description(
      'take the account back with the recovery key: records made with a stolen daily key are overridden and this server becomes home',
    )
    .requiredOption('--recovery-key <file>', 'the file written by "pmb id recovery-key"')
    .option(
      '--seq <n>',
      'the first record to override (default: the first record after the recovery record that the window still allows)',
      parseIntOption('--seq', 2, 2 ** 31),
    )
    .option('--server <url>', 'the server to make home (default: the saved one)')
    .action(async (opts: ClientOptions & { recoveryKey: string; seq?: number; server?: string }) => {
      const { Session } = await import('../session.js');
      const { unlock } = await import('../identity.js');
      const profile = await openProfile(ctx, opts);
      let text: string;
      try {
        text = await readFile(opts.recoveryKey, 'utf8');
      } catch (err) {
        if (isNotFound(err)) throw new CliError('usage', `No such file: ${opts.recoveryKey}`, 2);
        throw err;
      }
      const recovery = await unlock(text, undefined);
      const session = await Session.open(ctx, { ...opts, profile, login: false });
      try {
        // Logged in here, without following the account to where the thief took it (Session.login would).
        await session.client.login();
        const r = await recover(session, recovery, opts.seq);
        await profile.update((d) => {
          d.server = session.url;
          d.serverFingerprint = session.client.server.fingerprint;
        });
        const replaced = r.replaced.map((p) => ({
          seq: p.seq,
          kind: p.kind,
          ts: p.ts,
          ...(typeof p.body.domain === 'string' ? { domain: p.body.domain } : {}),
        }));
        if (opts.json) {
          printJson(ctx, {
            account: session.identity.fingerprint,
            recoveryKey: recovery.fingerprint,
            seq: r.seq,
            location: r.location,
            server: session.url,
            overridden: replaced,
          });
          return;
        }
        for (const p of replaced) {
          const where = p.domain ? ` ${p.domain}` : '';
          print(ctx, `overridden: record ${p.seq} (${p.kind}${where}, ${new Date(p.ts).toISOString()})`);
        }
        print(ctx, `Record ${r.seq}, signed by the recovery key, makes ${r.location} your home again.`);
        print(
          ctx,
          'Your daily key is still in other hands: if they publish again, run this again within the window; only a new identity ends it for good.',
        );
      } finally {
        await session.close();
      }
    });
}

const DEFAULT_WINDOW_DAYS = 30;
const MAX_WINDOW_DAYS = 365;

/** Creates `file` with mode 0600; never replaces an existing file. */
async function writeNewSecret(file: string, text: string): Promise<void> {
  await ensureDir(dirname(file));
  let fh: Awaited<ReturnType<typeof open>>;
  try {
    fh = await open(file, 'wx', 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new CliError('file_exists', `${file} already exists; choose another name with --out`);
    }
    throw err;
  }
  try {
    await fh.writeFile(text, 'utf8');
    await fh.sync();
    await fh.close();
  } catch (err) {
    await fh.close().catch(() => {});
    await rm(file, { force: true });
    throw err;
  }
}

/**
 * Publishes a location record making the session's server home, signed by `recovery`, at `seq` (default:
 * the first seq after the recovery record naming `recovery` that the window allows to override).
 */
async function recover(session: Session, recovery: Identity, seq: number | undefined) {
  const { checkOverride, createRecord, decodeRecord, readPublicIdentity, recordHash, recoveryBody } =
    await import('../../crypto/index.js');
  const { Lookup, Publish } = await import('../../protocol/frames.js');
  const account = session.identity.fingerprint;
  const { records } = await session.client.conn.request(Lookup, { query: account });
  const chain = records.map((r) => decodeRecord(r));
  // seq of each recovery record -> the fingerprint of the key it names.
  const named = new Map<number, string>();
  for (const p of chain) {
    const body = p.kind === 'recovery' ? recoveryBody.safeParse(p.body) : undefined;
    if (body?.success) named.set(p.seq, (await readPublicIdentity(body.data.key)).fingerprint);
  }
  const mine = [...named].filter(([, fp]) => fp === recovery.fingerprint).map(([s]) => s);
  if (mine.length === 0) {
    throw new CliError(
      'not_recovery_key',
      `No recovery record of ${account} names the key ${recovery.fingerprint}`,
    );
  }
  const now = Date.now();
  const allowed = (n: number) => {
    const check = checkOverride(chain, n, now);
    const inForce = check.ok ? named.get(check.recovery.seq) : undefined;
    return check.ok && inForce === recovery.fingerprint ? check : undefined;
  };
  const head = chain.reduce((m, p) => Math.max(m, p.seq), 0);
  let n = seq;
  if (n === undefined) {
    // The first record made with the daily key that may still be overridden (an earlier override is ours).
    const daily = (s: number) =>
      records[chain.findIndex((p) => p.seq === s)]?.sigs.some((sig) => sig.by === account) ?? false;
    for (let s = Math.min(...mine) + 1; s <= head && n === undefined; s++) if (daily(s) && allowed(s)) n = s;
    if (n === undefined) {
      throw new CliError(
        'nothing_to_override',
        'No record after your recovery record made with the daily key is young enough to override (or there is none); see --seq',
      );
    }
  }
  const before = records[chain.findIndex((p) => p.seq === (n as number) - 1)];
  if (n > head + 1 || before === undefined) {
    throw new CliError('usage', `--seq must be from 2 to ${head + 1}: the chain has ${head} records`, 2);
  }
  const server = session.client.server;
  const record = await createRecord(recovery, {
    kind: 'location',
    subject: account,
    seq: n,
    prev: await recordHash(before),
    ts: now,
    body: { domain: server.domain, server: server.fingerprint },
  });
  await session.client.conn.request(Publish, { record });
  return { seq: n, location: server.domain, replaced: chain.filter((p) => p.seq >= n) };
}

async function profileFingerprint(profile: Profile): Promise<string> {
  if (profile.data.fingerprint) return profile.data.fingerprint;
  const armored = await profile.readSecretKey();
  if (armored === undefined) throw noIdentity(profile);
  const { inspectSecretKey } = await import('../identity.js');
  return (await inspectSecretKey(armored)).fingerprint;
}
