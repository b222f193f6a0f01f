import { PmbError } from '../../protocol/errors.js';
import { Hello } from '../../protocol/frames.js';
import { PROTOCOL_VERSIONS } from '../../protocol/version.js';
import type { Router } from '../router.js';

export function register(router: Router): void {
  router.handle(Hello, (params, session, ctx) => {
    if (session.version !== undefined)
      throw new PmbError('bad_request', 'hello was already said on this connection');
    const version = PROTOCOL_VERSIONS.find((v) => params.versions.includes(v));
    if (version === undefined) {
      throw new PmbError(
        'unsupported_version',
        `This server speaks versions ${PROTOCOL_VERSIONS.join(', ')}`,
        {
          fatal: true,
        },
      );
    }
    session.version = version;
    const { limits } = ctx.config;
    return {
      version,
      connection: session.id,
      time: ctx.now(),
      server: {
        domain: ctx.config.domain,
        fingerprint: ctx.identity.fingerprint,
        publicKey: ctx.identity.publicKeyBytes,
        registration: ctx.config.registration,
      },
      limits: {
        maxFrameBytes: limits.maxFrameBytes,
        maxBodyBytes: limits.maxBodyBytes,
        maxRecipients: limits.maxRecipients,
        framesPerSecond: limits.framesPerSecond,
      },
    };
  });
}
