export * from './access.js';
export * from './keys.js';
export * from './jwt.js';
export * from './htpasswd.js';
export * from './policy.js';
