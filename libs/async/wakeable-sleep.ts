/**
 * The wait of a polling loop: sleep(ms) until the poll interval passes or wake() is called (new
 * work, or stop). `woken` says whether wake() came since resetWoken(), so a loop that resets it at
 * the top of a pass can go again at once instead of sleeping through a wake that came mid-pass.
 * Several loops may sleep on one instance; wake() ends every sleep.
 */
export class WakeableSleep {
  private readonly wakers = new Set<() => void>();
  private wokenSinceReset = false;

  get woken(): boolean {
    return this.wokenSinceReset;
  }

  resetWoken(): void {
    this.wokenSinceReset = false;
  }

  wake(): void {
    this.wokenSinceReset = true;
    for (const wake of [...this.wakers]) wake();
  }

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wakers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wakers.add(done);
    });
  }
}
