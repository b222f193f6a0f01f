import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { getRequestListener } from '@hono/node-server';
import type { Hono } from 'hono';
import { type PublicIdentity, readPublicIdentity } from '../crypto/index.js';
import { serveDeliveries } from '../federation/deliver.js';
import { Discovery } from '../federation/discovery.js';
import { Gossip } from '../federation/gossip.js';
import { Links, type LinksOptions } from '../federation/links.js';
import { Mail } from '../federation/mail.js';
import type { OutboxOptions } from '../federation/outbox.js';
import { ensureOwnServerRecord } from '../federation/server-records.js';
import { randomBytes, toHex } from '../protocol/bytes.js';
import { openStore, type Store } from '../store/index.js';
import type { AcmeManager } from './acme.js';
import { acmeFiles } from './acme-files.js';
import type { ServerConfig } from './config.js';
import type { Context } from './context.js';
import { Delivery } from './delivery.js';
import { lockDomain } from './domain-lock.js';
import { Gateway } from './gateway.js';
import { registerCoreHandlers } from './handlers/index.js';
import { createHttpApp } from './http.js';
import { createListener, handshakeLimits, type Listener } from './listener.js';
import { createLogger, type Logger } from './logger.js';
import { PendingLogins } from './pending-logins.js';
import { Router } from './router.js';
import { loadServerIdentity } from './server-identity.js';

/** How long a delivered message's id is remembered, so a late retry is still recognised as a duplicate. */
const DEDUPE_HORIZON_MS = 7 * 24 * 3600_000;

export interface PmbServer {
  readonly config: ServerConfig;
  /** ws://host:port once started. */
  readonly url: string;
  readonly port: number;
  readonly fingerprint: string;
  readonly adminToken: string;
  readonly context: Context;
  /** With acme: the challenge listener's port (plain HTTP), once started. */
  readonly acmeHttpPort: number | undefined;
  readonly router: Router;
  start(): Promise<void>;
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** createServer -> start -> close. Nothing listens or touches the disk before start(). */
export function createServer(
  config: ServerConfig,
  opts: {
    log?: Logger;
    /** Adds HTTP routes (first-run setup, appliance admin routes) once the context exists. */
    routes?: (app: Hono, ctx: Context) => void;
    /** Server links: handshake timeout, reconnect backoff (tests shorten them). */
    links?: LinksOptions;
    /** Outbox retry backoff (default: the links' backoff). */
    outbox?: OutboxOptions;
  } = {},
): PmbServer {
  const log = opts.log ?? createLogger(config.logLevel);
  const router = new Router();
  registerCoreHandlers(router);
  // A bad resolve entry fails here, before anything is opened.
  const discovery = new Discovery({ resolve: config.resolve ?? {}, now: config.now ?? Date.now });
  let store: Store | undefined;
  let ctx: Context | undefined;
  let gateway: Gateway | undefined;
  let links: Links | undefined;
  let gossip: Gossip | undefined;
  let mail: Mail | undefined;
  let http: Listener | undefined;
  let stopListener = () => {};
  let adminToken = '';
  let port = 0;
  let maintenance: ReturnType<typeof setInterval> | undefined;
  let acme: AcmeManager | undefined;
  let closed = false;
  // With acme (and no tls files) the certificate lives in the data dir and the ACME client renews it.
  const acmeConfig = config.tls ? undefined : config.acme;
  const tls = config.tls ?? (acmeConfig ? acmeFiles(config.dataDir) : undefined);
  const urlOf = () =>
    `${tls ? 'wss' : 'ws'}://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;

  const server: PmbServer = {
    config,
    get url() {
      return urlOf();
    },
    get port() {
      return port;
    },
    get fingerprint() {
      return ctx?.identity.fingerprint ?? '';
    },
    get adminToken() {
      return adminToken;
    },
    get acmeHttpPort() {
      return acme?.httpPort;
    },
    get context() {
      if (!ctx) throw new Error('server not started');
      return ctx;
    },
    router,

    async start() {
      await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
      store = openStore(config.database ?? join(config.dataDir, 'pmb.db'));
      const identity = await loadServerIdentity(store, config.domain);
      lockDomain(store, config.domain);
      adminToken = await loadAdminToken(config.dataDir);
      const now = config.now ?? Date.now;
      const keyCache = new Map<string, PublicIdentity>();
      const openedStore = store;
      ctx = {
        config,
        store,
        identity,
        log,
        delivery: new Delivery(store, config.limits.deliveryWindow, log),
        now,
        pendingLogins: new PendingLogins(config.limits),
        discovery,
        serverRecord: undefined,
        get links() {
          return links as Links;
        },
        get gossip() {
          return gossip as Gossip;
        },
        get mail() {
          return mail as Mail;
        },
        async publicIdentity(fp) {
          const hit = keyCache.get(fp);
          if (hit) return hit;
          const bytes = openedStore.identities.publicKey(fp);
          if (!bytes) return undefined;
          const key = await readPublicIdentity(bytes);
          if (keyCache.size > 10_000) keyCache.clear();
          keyCache.set(fp, key);
          return key;
        },
      };
      links = new Links(ctx, opts.links);
      gossip = new Gossip(ctx);
      mail = new Mail(ctx, opts.outbox ?? (opts.links?.backoff ? { backoff: opts.links.backoff } : {}));
      serveDeliveries(ctx);
      const linksNow = links;
      gateway = new Gateway(ctx, router, { onServerLink: (ws, address) => linksNow.accept(ws, address) });
      const app = createHttpApp({ ctx, gateway, adminToken, publicUrl: () => config.publicUrl ?? urlOf() });
      opts.routes?.(app, ctx);
      const gw = gateway;
      let reloadListener = async () => {};
      /** Opens the main port (TLS when configured): at once, or once ACME has the first certificate. */
      const listenMain = async () => {
        const listener = await createListener(
          tls ? { ...config, tls } : config,
          getRequestListener(app.fetch),
          log,
        );
        if (closed) {
          listener.stop();
          return;
        }
        http = listener.server;
        stopListener = listener.stop;
        reloadListener = listener.reload;
        http.on('upgrade', (req, socket, head) => gw.handleUpgrade(req, socket, head));
        await new Promise<void>((resolve, reject) => {
          http!.once('error', reject);
          http!.listen(config.port, config.host, () => resolve());
        });
        port = (http.address() as AddressInfo).port;
        // What other servers learn of this one: its domain and where to reach it.
        ctx!.serverRecord = await ensureOwnServerRecord(
          openedStore,
          identity,
          { domain: config.domain, endpoints: { ws: config.publicUrl ?? urlOf() } },
          now(),
        );
        gw.start();
        mail?.start();
        for (const peer of config.peers ?? []) linksNow.want(peer);
        // Lets local tools (pmb invite, pmb doctor) find the running server and its admin API.
        await writeFile(
          join(config.dataDir, 'server.json'),
          `${JSON.stringify({ url: urlOf(), pid: process.pid })}\n`,
        );
        log.info(
          { url: urlOf(), domain: config.domain, fingerprint: identity.fingerprint },
          'pmb server listening',
        );
      };
      let opening: Promise<void> | undefined;
      const openMain = () => {
        opening ??= listenMain();
        return opening;
      };
      if (acmeConfig) {
        const httpsBase = () => {
          if (config.publicUrl) return config.publicUrl.replace(/^ws/, 'http');
          const p = config.port === 443 || config.port === 0 ? '' : `:${config.port}`;
          return `https://${acmeConfig.domains[0] ?? config.domain}${p}`;
        };
        // Loaded only when used: acme-client (and its axios) is ~25 MB of RSS a server without ACME never needs.
        const { AcmeManager } = await import('./acme.js');
        acme = new AcmeManager(acmeConfig, {
          dataDir: config.dataDir,
          host: config.host,
          log,
          handshakes: handshakeLimits(config),
          httpsBase,
          onCertificate: async () => {
            if (closed) return;
            if (opening) {
              await opening;
              await reloadListener();
            } else {
              await openMain();
            }
          },
        });
        await acme.start();
        // A certificate already on disk (renewed in the background if due): serve it at once. Without
        // one, wait a while for the first; if the CA cannot be reached the main port stays closed (no
        // plain-text fallback) until a retry succeeds, and the challenge listener keeps running.
        if ((await acme.usable()) || (await acme.waitForCertificate())) {
          await openMain();
        } else if (opening) {
          await opening;
        } else {
          log.error(
            { port: config.port, acmeHttpPort: acme.httpPort },
            'no TLS certificate yet (see the ACME error above): the main port opens once one is obtained',
          );
        }
      } else {
        await openMain();
      }
      const maintained = store;
      maintenance = setInterval(() => {
        const horizon = now() - DEDUPE_HORIZON_MS;
        maintained.writes
          .submit(() => maintained.mailbox.purge(horizon))
          .catch((err: unknown) => {
            log.warn({ err }, 'purge failed');
          });
      }, 3600_000);
      maintenance.unref?.();
    },

    async close() {
      closed = true;
      if (maintenance) clearInterval(maintenance);
      await acme?.close();
      acme = undefined;
      stopListener();
      mail?.close();
      await links?.close();
      await gateway?.close();
      if (http) {
        http.closeAllConnections?.();
        await new Promise<void>((resolve) => http!.close(() => resolve()));
      }
      store?.close();
      if (store) await rm(join(config.dataDir, 'server.json'), { force: true });
      gateway = undefined;
      links = undefined;
      gossip = undefined;
      mail = undefined;
      http = undefined;
      store = undefined;
    },

    [Symbol.asyncDispose]() {
      return server.close();
    },
  };
  return server;
}

/** The admin API token lives in the data dir (0600): whoever can read it administers the server. */
async function loadAdminToken(dataDir: string): Promise<string> {
  const file = join(dataDir, 'admin-token');
  try {
    return (await readFile(file, 'utf8')).trim();
  } catch {
    const token = toHex(randomBytes(24));
    await writeFile(file, `${token}\n`, { mode: 0o600 });
    return token;
  }
}
