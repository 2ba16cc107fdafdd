import { setImmediate as nextTurn } from 'node:timers/promises';

/**
 * Requests in progress, which background loops in the same process give way to: the API node
 * counts its HTTP requests here, the outbox relay reads it between batches.
 */
export class Activity {
  private inFlight = 0;
  private enteredSinceLook = false;

  enter(): void {
    this.inFlight++;
    this.enteredSinceLook = true;
  }

  leave(): void {
    if (this.inFlight > 0) this.inFlight--;
  }

  get busy(): boolean {
    return this.inFlight > 0;
  }

  /** Whether a request was in progress at any time since the last call (or ever, on the first). */
  busySinceLastLook(): boolean {
    const was = this.enteredSinceLook || this.inFlight > 0;
    this.enteredSinceLook = false;
    return was;
  }
}

/**
 * Between two batches of background work: always lets the event loop run what is waiting; while
 * `activity` is busy, also waits as long as the batch just done took (at most `maxMs`), so the
 * background takes at most about half of the time and the requests the rest.
 */
export async function giveWay(activity: Activity | undefined, workMs: number, maxMs = 1_000): Promise<void> {
  await nextTurn();
  if (!activity?.busy) return;
  const wait = Math.min(maxMs, Math.max(0, workMs));
  if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
}
