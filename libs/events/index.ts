export * from './event.js';
export * from './bus.js';
export * from './memory-bus.js';
export * from './outbox-relay.js';
// nats-bus.ts is left out, as libs/storage/index.ts leaves out s3.ts: importing it loads the NATS
// client, which embedded mode never needs. Cluster code imports './nats-bus.js' directly.
export * from './best-effort-publisher.js';
export * from './pull-coalescer.js';
