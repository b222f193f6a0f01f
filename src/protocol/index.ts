export * from './bytes.js';
export * from './codec.js';
export * from './errors.js';
export * from './frames.js';
export * from './limits.js';
export * from './records.js';
export * from './schemas.js';
export * from './version.js';
