import { setImmediate as nextTurn } from 'node:timers/promises';

/**
 * Requests in progress, which background loops in the same process give way to: the API node
 * counts its HTTP requests here, the outbox relay reads it between batches.
 */
export class Activity {
  private inFlight = 0;
  private enteredSinceLook = false;
  /** The last look found no request, and none came since (true before the first look). */
  private idleSinceLook = true;
  private readonly wakeListeners: Array<() => void> = [];

  enter(): void {
    const waking = this.idleSinceLook;
    this.idleSinceLook = false;
    this.inFlight++;
    this.enteredSinceLook = true;
    if (waking) for (const listener of this.wakeListeners) listener();
  }

  /**
   * Called on the first request after a look that found the node idle (and on the first ever):
   * what a periodic look would only see up to one period later.
   */
  onWake(listener: () => void): void {
    this.wakeListeners.push(listener);
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
    this.idleSinceLook = !was;
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
