import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildEvent, MemoryBus, Subjects, type RegistryEvent } from '../../libs/events/index.js';
import { connectCache, ManifestReadCache } from '../../libs/registry/index.js';
import { eventually } from '../helpers/wait.js';

const context = { urlBase: '', request: { id: '', addr: '', host: '', method: 'PUT', useragent: '' }, actor: {}, source: { addr: '', instanceID: 'test' } };

function manifest(n: number, bytes = 10) {
  return { digest: `sha256:${String(n).padStart(64, '0')}`, mediaType: 'application/vnd.oci.image.manifest.v1+json', size: bytes, payload: Buffer.alloc(bytes) };
}

function liveCache(maxEntries = 100, maxBytes = 1 << 20): ManifestReadCache {
  const cache = new ManifestReadCache({ maxEntries, maxBytes });
  cache.setLive(true);
  return cache;
}

function event(subject: string, target: Record<string, unknown>): [string, RegistryEvent] {
  return [subject, buildEvent(subject === Subjects.manifestPush ? 'push' : 'delete', target as unknown as RegistryEvent['target'], context)];
}

describe('manifest read cache', () => {
  it('answers a tag and a digest it was given, and nothing else', () => {
    const cache = liveCache();
    const m = manifest(1);
    cache.remember(cache.ticket(), 'a/b', { tag: 'v1' }, m);
    assert.equal(cache.lookup('a/b', { tag: 'v1' })?.digest, m.digest);
    assert.equal(cache.lookup('a/b', { digest: m.digest })?.digest, m.digest);
    assert.equal(cache.lookup('a/b', { tag: 'v2' }), undefined);
    assert.equal(cache.lookup('a/c', { tag: 'v1' }), undefined);
  });

  it('does not store a read that an invalidation overtook (the read may have seen the old tag)', () => {
    const cache = liveCache();
    const ticket = cache.ticket();
    cache.invalidate('a/b', { tag: 'v1' });
    cache.remember(ticket, 'a/b', { tag: 'v1' }, manifest(1));
    assert.equal(cache.lookup('a/b', { tag: 'v1' }), undefined);
  });

  it('drops a tag on a push or tag delete event, a manifest on a manifest delete event', () => {
    const cache = liveCache();
    const m = manifest(1);
    cache.remember(cache.ticket(), 'a/b', { tag: 'v1' }, m);
    cache.remember(cache.ticket(), 'a/b', { tag: 'v2' }, m);
    cache.apply(...event(Subjects.manifestPush, { repository: 'a/b', tag: 'v1', digest: manifest(2).digest }));
    assert.equal(cache.lookup('a/b', { tag: 'v1' }), undefined);
    assert.equal(cache.lookup('a/b', { tag: 'v2' })?.digest, m.digest);
    cache.apply(...event(Subjects.tagDelete, { repository: 'a/b', tag: 'v2', digest: m.digest }));
    assert.equal(cache.lookup('a/b', { tag: 'v2' }), undefined);
    assert.equal(cache.lookup('a/b', { digest: m.digest })?.digest, m.digest);
    cache.apply(...event(Subjects.manifestDelete, { repository: 'a/b', digest: m.digest }));
    assert.equal(cache.lookup('a/b', { digest: m.digest }), undefined);
  });

  it('keeps at most maxEntries and maxBytes, least recently used out first', () => {
    const byCount = liveCache(3);
    for (let i = 0; i < 3; i++) byCount.remember(byCount.ticket(), 'r', { digest: manifest(i).digest }, manifest(i));
    assert.ok(byCount.lookup('r', { digest: manifest(0).digest })); // 0 is now the most recent
    byCount.remember(byCount.ticket(), 'r', { digest: manifest(3).digest }, manifest(3));
    assert.equal(byCount.size.entries, 3);
    assert.equal(byCount.lookup('r', { digest: manifest(1).digest }), undefined);
    assert.ok(byCount.lookup('r', { digest: manifest(0).digest }));

    const byBytes = liveCache(1000, 64 * 1024);
    for (let i = 0; i < 100; i++) byBytes.remember(byBytes.ticket(), 'r', { digest: manifest(i, 4000).digest }, manifest(i, 4000));
    assert.ok(byBytes.size.bytes <= 64 * 1024, `${byBytes.size.bytes} bytes`);
    assert.ok(byBytes.lookup('r', { digest: manifest(99, 4000).digest }));
    // Over an eighth of the cache: not kept at all.
    byBytes.remember(byBytes.ticket(), 'r', { digest: manifest(500, 9000).digest }, manifest(500, 9000));
    assert.equal(byBytes.lookup('r', { digest: manifest(500, 9000).digest }), undefined);
  });

  it('answers and stores nothing until live, and is emptied when it stops being live', () => {
    const cache = new ManifestReadCache({ maxEntries: 10, maxBytes: 1 << 20 });
    cache.remember(cache.ticket(), 'r', { tag: 'v1' }, manifest(1));
    assert.equal(cache.size.entries, 0);
    cache.setLive(true);
    const ticket = cache.ticket();
    cache.remember(ticket, 'r', { tag: 'v1' }, manifest(1));
    assert.ok(cache.lookup('r', { tag: 'v1' }));
    cache.setLive(false);
    assert.equal(cache.size.entries, 0);
    assert.equal(cache.lookup('r', { tag: 'v1' }), undefined);
    // A read that began before the drop is not stored once live again.
    cache.setLive(true);
    cache.remember(ticket, 'r', { tag: 'v1' }, manifest(1));
    assert.equal(cache.lookup('r', { tag: 'v1' }), undefined);
  });

  it('follows the in-process bus: live once subscribed, and events published on it drop entries', async () => {
    const bus = new MemoryBus();
    const cache = new ManifestReadCache({ maxEntries: 10, maxBytes: 1 << 20 });
    const stop = connectCache(cache, bus, (err) => assert.fail(String(err)));
    await eventually(() => assert.ok(cache.live));
    cache.remember(cache.ticket(), 'r', { tag: 'v1' }, manifest(1));
    await bus.publish(...event(Subjects.manifestPush, { repository: 'r', tag: 'v1', digest: manifest(2).digest }));
    await eventually(() => assert.equal(cache.lookup('r', { tag: 'v1' }), undefined));
    stop();
    assert.equal(cache.live, false);
    await bus.close();
  });
});
