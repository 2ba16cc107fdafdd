/**
 * Group commit: callers add items one by one and each gets a promise of its item's result; the
 * items are handed to `flush` together, at most `maxInFlight` flushes at a time and `maxBatch`
 * items a flush. While flushes are running the next items wait and go together in the next one,
 * so under load one statement carries many items, and alone an item goes on the next turn.
 */
export class Batcher<T, R = void> {
  private queued: Array<{ item: T; resolve: (r: R) => void; reject: (err: unknown) => void }> = [];
  private inFlight = 0;
  private scheduled = false;

  constructor(
    /** Results in the order of `items`. */
    private readonly flush: (items: T[]) => Promise<R[]>,
    private readonly options: { maxBatch: number; maxInFlight: number },
  ) {}

  add(item: T): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.queued.push({ item, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.inFlight >= this.options.maxInFlight || this.queued.length === 0) return;
    this.scheduled = true;
    // One turn later: everything added in this turn goes in the same flush.
    setImmediate(() => {
      this.scheduled = false;
      this.run();
    });
  }

  private run(): void {
    while (this.inFlight < this.options.maxInFlight && this.queued.length > 0) {
      const batch = this.queued.splice(0, this.options.maxBatch);
      this.inFlight++;
      this.flush(batch.map((b) => b.item))
        .then(
          (results) => {
            for (const [i, b] of batch.entries()) b.resolve(results[i] as R);
          },
          (err) => {
            for (const b of batch) b.reject(err ?? new Error('not flushed'));
          },
        )
        .finally(() => {
          this.inFlight--;
          this.schedule();
        });
    }
  }
}
