import { uploads, type Executor } from '../metadata/index.js';

/**
 * Touches `trx` every `intervalMs` as long as `progress()` has grown since the last touch: a
 * transaction waiting on a body that still delivers bytes is kept, one whose body stalled is
 * left to the server's idle_in_transaction_session_timeout. Returns the stop function.
 */
export function keepTransactionAlive(trx: Executor, intervalMs: number | undefined, progress: () => number): () => void {
  if (!intervalMs) return () => {};
  let seen = progress();
  let touching = false;
  const timer = setInterval(() => {
    const now = progress();
    if (now === seen || touching) return;
    seen = now;
    touching = true;
    // A failure here shows up on the transaction's next statement.
    uploads
      .touchTransaction(trx)
      .catch(() => {})
      .finally(() => (touching = false));
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
