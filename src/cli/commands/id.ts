import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { type CliContext, note, print, printJson } from '../context.js';
import { CliError } from '../errors.js';
import { isNotFound, writeFileAtomic } from '../files.js';
import { type ClientOptions, clientOptions, openProfile } from '../options.js';
import { newDeviceId, noIdentity, type Profile } from '../profile.js';

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
}

async function profileFingerprint(profile: Profile): Promise<string> {
  if (profile.data.fingerprint) return profile.data.fingerprint;
  const armored = await profile.readSecretKey();
  if (armored === undefined) throw noIdentity(profile);
  const { inspectSecretKey } = await import('../identity.js');
  return (await inspectSecretKey(armored)).fingerprint;
}
