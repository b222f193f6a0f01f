export * from './client.js';
export * from './connection.js';
export * from './failover.js';
