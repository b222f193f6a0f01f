export * from './challenge.js';
export * from './config.js';
export * from './content.js';
export * from './keys.js';
export * from './message.js';
export * from './records.js';
export * from './signature.js';
