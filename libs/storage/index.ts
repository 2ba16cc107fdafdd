export * from './blob-store.js';
export * from './filesystem.js';
export { copiesToWritable, type CopiesToWritable } from './file-read-stream.js';
