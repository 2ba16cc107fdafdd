/** Batcher: items added together go in one flush, later ones wait for a free flush, a failed flush rejects its items only. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Batcher } from '../../libs/async/batcher.js';

describe('Batcher', () => {
  it('flushes the items added in one turn together and answers each with its own result', async () => {
    const flushes: number[][] = [];
    const batcher = new Batcher(
      async (items: number[]) => {
        flushes.push(items);
        return items.map((n) => n * 2);
      },
      { maxBatch: 10, maxInFlight: 1 },
    );
    const results = await Promise.all([1, 2, 3].map((n) => batcher.add(n)));
    assert.deepEqual(results, [2, 4, 6]);
    assert.deepEqual(flushes, [[1, 2, 3]]);
  });

  it('keeps at most maxInFlight flushes running and maxBatch items a flush; what waits goes in the next one', async () => {
    const flushes: number[][] = [];
    const release: Array<() => void> = [];
    let running = 0;
    let mostRunning = 0;
    const batcher = new Batcher(
      (items: number[]) => {
        flushes.push(items);
        running++;
        mostRunning = Math.max(mostRunning, running);
        return new Promise<undefined[]>((resolve) =>
          release.push(() => {
            running--;
            resolve(items.map(() => undefined));
          }),
        );
      },
      { maxBatch: 2, maxInFlight: 1 },
    );
    const first = [1, 2, 3].map((n) => batcher.add(n));
    while (release.length === 0) await new Promise((r) => setImmediate(r));
    const later = [4, 5].map((n) => batcher.add(n));
    let done = 0;
    while (done < 3) {
      while (release.length === 0) await new Promise((r) => setImmediate(r));
      release.shift()!();
      done++;
    }
    await Promise.all([...first, ...later]);
    assert.equal(mostRunning, 1);
    assert.deepEqual(flushes, [[1, 2], [3, 4], [5]]);
  });

  it('rejects the items of a failed flush and still flushes the next ones', async () => {
    let calls = 0;
    const batcher = new Batcher(
      async (items: string[]) => {
        calls++;
        if (calls === 1) throw new Error('down');
        return items.map((s) => s.toUpperCase());
      },
      { maxBatch: 10, maxInFlight: 1 },
    );
    await assert.rejects(batcher.add('a'), /down/);
    assert.equal(await batcher.add('b'), 'B');
  });
});
