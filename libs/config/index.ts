export * from './keys.js';
export * from './config.js';
export * from './notifications.js';
export * from './duration.js';
