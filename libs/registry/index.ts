export * from './registry.js';
export * from './deps.js';
export * from './context.js';
export { uploadRange, type ChunkInfo, type UploadSession } from './upload-service.js';
export { tooLarge, type StoredManifest, type PutResult } from './manifest-service.js';
export type { BlobHandle } from './blob-service.js';
export type { Page, ImageIndex } from './discovery.js';
export { warmHashPool } from './hash-pool.js';
export type { WebhookEndpointStatus } from './webhook-status.js';
