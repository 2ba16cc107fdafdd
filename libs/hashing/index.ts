export { openHash, warmHashPool, type HashSession } from './hash-pool.js';
export { HashingCounter, BodyTooLongError, BodyAbortedError, BlobTooLargeError } from './hashing-transform.js';
export { HashStateError, initialHashState } from './saved-hash-state.js';
