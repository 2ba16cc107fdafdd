export * from './event.js';
export * from './bus.js';
export * from './memory-bus.js';
export * from './outbox-relay.js';
export * from './nats-bus.js';
export * from './best-effort-publisher.js';
