export * from './keys.js';
export * from './config.js';
