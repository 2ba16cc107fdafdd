export { openHash, hashImplementation, warmHashPool, type HashSession, type HashImplementation } from './hash-pool.js';
export { HashingCounter, BodyTooLongError, BodyAbortedError, BlobTooLargeError } from './hashing-transform.js';
export { HashStateError, initialHashState } from './saved-hash-state.js';
