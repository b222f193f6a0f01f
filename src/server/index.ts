export { type RegistrationPolicy, type ServerConfig, serverConfig } from './config.js';
export type { Context } from './context.js';
export { createInvite } from './invites.js';
export { createServer, type PmbServer } from './server.js';
