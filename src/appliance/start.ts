import { createServer, type PmbServer } from '../server/index.js';
import type { Logger } from '../server/logger.js';
import { type ResolvedConfig, toServerConfig } from './config.js';
import { prepareFirstRun, setupUrls } from './first-run.js';
import { applianceRoutes } from './routes.js';

export interface Appliance {
  server: PmbServer;
  /** Present while the data dir was never set up: where to finish setup, and the one-time token. */
  setup: { token: string; urls: string[] } | undefined;
}

/** `pmb serve`: the server with the appliance's routes, started; on a fresh data dir, first-run setup. */
export async function startAppliance(
  resolved: ResolvedConfig,
  opts: { log?: Logger; version?: string } = {},
): Promise<Appliance> {
  const { config } = resolved;
  const server = createServer(
    { ...toServerConfig(config), ...(opts.version ? { version: opts.version } : {}) },
    {
      ...(opts.log ? { log: opts.log } : {}),
      routes: applianceRoutes({ origins: resolved.origins }),
    },
  );
  try {
    await server.start();
    const token = await prepareFirstRun(server.context.store, config.dataDir);
    const setup = token
      ? {
          token,
          urls: setupUrls({
            host: config.host,
            port: server.port,
            tls: Boolean(config.tls ?? config.acme),
            publicUrl: config.publicUrl,
          }),
        }
      : undefined;
    return { server, setup };
  } catch (err) {
    await server.close().catch(() => {});
    throw err;
  }
}
