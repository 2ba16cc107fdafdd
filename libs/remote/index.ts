export * from './client.js';
export * from './errors.js';
export { parseChallenges, type Challenge } from './challenge.js';
export { TokenCache } from './token-cache.js';
