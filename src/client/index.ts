export * from './client.js';
export * from './connection.js';
