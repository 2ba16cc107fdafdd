export * from './keys.js';
export * from './config.js';
export * from './notifications.js';
export * from './proxy.js';
