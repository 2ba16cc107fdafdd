/** The manifest read cache's fill tickets: a fill is refused only when an entry it would store (its tag, its manifest) changed during its read. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ManifestReadCache } from '../libs/registry/manifest-read-cache.js';

const manifest = (digest: string) => ({ digest, mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 2, payload: Buffer.from('{}') });
const D1 = `sha256:${'1'.repeat(64)}`;

function liveCache(): ManifestReadCache {
  const cache = new ManifestReadCache({ maxEntries: 100_000, maxBytes: 1 << 30 });
  cache.setLive(true);
  return cache;
}

describe('manifest read cache tickets', () => {
  it('stores a fill while other repositories are invalidated during its read', () => {
    const cache = liveCache();
    const ticket = cache.ticket();
    for (let i = 0; i < 100; i++) cache.invalidate(`other/${i}`, { tag: 'latest' });
    cache.remember(ticket, 'app', { tag: 'latest' }, manifest(D1));
    assert.equal(cache.lookup('app', { tag: 'latest' })?.digest, D1);
  });

  it('stores a fill while other tags of its repository are invalidated during its read', () => {
    const cache = liveCache();
    const ticket = cache.ticket();
    for (let i = 0; i < 100; i++) cache.invalidate('app', { tag: `build-${i}` });
    cache.invalidate('app', { digest: `sha256:${'2'.repeat(64)}` });
    cache.remember(ticket, 'app', { tag: 'latest' }, manifest(D1));
    assert.equal(cache.lookup('app', { tag: 'latest' })?.digest, D1);
  });

  it('refuses a fill when its tag was invalidated during its read', () => {
    const cache = liveCache();
    const ticket = cache.ticket();
    cache.invalidate('app', { tag: 'latest' });
    cache.remember(ticket, 'app', { tag: 'latest' }, manifest(D1));
    assert.equal(cache.lookup('app', { tag: 'latest' }), undefined);
    // A fill that took its ticket after the invalidation is stored.
    cache.remember(cache.ticket(), 'app', { tag: 'latest' }, manifest(D1));
    assert.equal(cache.lookup('app', { tag: 'latest' })?.digest, D1);
  });

  it('refuses a fill when its manifest was deleted during its read, by tag and by digest', () => {
    const cache = liveCache();
    const ticket = cache.ticket();
    cache.invalidate('app', { digest: D1 });
    cache.remember(ticket, 'app', { tag: 'latest' }, manifest(D1));
    cache.remember(ticket, 'app', { digest: D1 }, manifest(D1));
    assert.equal(cache.lookup('app', { tag: 'latest' }), undefined);
    assert.equal(cache.lookup('app', { digest: D1 }), undefined);
  });

  it('refuses an old fill once the invalidation of its tag may have been forgotten, and after a clear', () => {
    const cache = liveCache();
    let ticket = cache.ticket();
    cache.invalidate('app', { tag: 'latest' });
    // So many tags change after it that app's change is no longer remembered by name.
    for (let i = 0; i < 5_000; i++) cache.invalidate(`other/${i}`, { tag: 'latest' });
    cache.remember(ticket, 'app', { tag: 'latest' }, manifest(D1));
    assert.equal(cache.lookup('app', { tag: 'latest' }), undefined);
    ticket = cache.ticket();
    cache.clear();
    cache.remember(ticket, 'app', { tag: 'latest' }, manifest(D1));
    assert.equal(cache.lookup('app', { tag: 'latest' }), undefined);
  });
});
