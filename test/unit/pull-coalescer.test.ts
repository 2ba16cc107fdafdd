/** PullCoalescer: identical pulls within the window become one event with a count; nothing else is merged. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildEvent, type EventContext, type RegistryEvent, Subjects } from '../../libs/events/index.js';
import { PullCoalescer } from '../../libs/events/pull-coalescer.js';
import { eventually } from '../helpers/wait.js';

const client = (addr: string, useragent = 'skopeo/1.9'): EventContext => ({
  request: { id: `req-${Math.random()}`, addr, host: 'registry:5000', method: 'GET', useragent },
  actor: {},
  source: { addr: '127.0.0.1:5000', instanceID: 'node-a' },
});
const pull = (target: { repository: string; digest: string; tag?: string }, context = client('10.0.0.1')) =>
  buildEvent('pull', { mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 10, ...target }, context);

function recordingSink() {
  const offered: Array<{ subject: string; event: RegistryEvent }> = [];
  return { offered, offer: (subject: string, event: RegistryEvent) => void offered.push({ subject, event }) };
}

describe('PullCoalescer', () => {
  const A = { repository: 'team/app', digest: 'sha256:aa', tag: 'v1' };

  it('holds identical pulls as the first one, counted, until the window ends', () => {
    const sink = recordingSink();
    const coalescer = new PullCoalescer(sink, { windowMs: 60_000 });
    const first = pull(A);
    coalescer.offer(Subjects.manifestPull, first);
    for (let i = 0; i < 4; i++) coalescer.offer(Subjects.manifestPull, pull(A));
    assert.equal(sink.offered.length, 0, 'nothing leaves before the window ends');
    coalescer.flush();
    assert.equal(sink.offered.length, 1);
    assert.equal(sink.offered[0]!.event.id, first.id, "the first pull's id, timestamp and request");
    assert.equal(sink.offered[0]!.event.request.id, first.request.id);
    assert.equal(sink.offered[0]!.event.count, 5);
    coalescer.flush();
    assert.equal(sink.offered.length, 1, 'a flush hands each event over once');
  });

  it('keeps pulls apart that differ in subject, object, tag, actor or client', () => {
    const sink = recordingSink();
    const coalescer = new PullCoalescer(sink, { windowMs: 60_000 });
    const distinct: Array<[string, RegistryEvent]> = [
      [Subjects.manifestPull, pull(A)],
      [Subjects.blobPull, pull(A)],
      [Subjects.manifestPull, pull({ ...A, repository: 'team/other' })],
      [Subjects.manifestPull, pull({ ...A, digest: 'sha256:bb' })],
      [Subjects.manifestPull, pull({ ...A, tag: undefined })],
      [Subjects.manifestPull, pull(A, client('10.0.0.2'))],
      [Subjects.manifestPull, pull(A, client('10.0.0.1', 'containerd/2.0'))],
      [Subjects.manifestPull, pull(A, { ...client('10.0.0.1'), actor: { name: 'alice' } })],
    ];
    for (const [subject, event] of distinct) coalescer.offer(subject, event);
    coalescer.offer(Subjects.manifestPull, pull(A));
    coalescer.flush();
    assert.deepEqual(
      sink.offered.map((o) => o.event.count),
      [2, 1, 1, 1, 1, 1, 1, 1],
    );
    assert.deepEqual(
      sink.offered.map((o) => o.event.id),
      distinct.map(([, e]) => e.id),
    );
  });

  it('with a window of 0 passes every pull straight through, count 1', () => {
    const sink = recordingSink();
    const coalescer = new PullCoalescer(sink, { windowMs: 0 });
    coalescer.offer(Subjects.manifestPull, pull(A));
    coalescer.offer(Subjects.manifestPull, pull(A));
    assert.deepEqual(
      sink.offered.map((o) => o.event.count),
      [1, 1],
    );
  });

  it('hands everything held over when it holds its most distinct pulls, so memory stays bounded', () => {
    const sink = recordingSink();
    const coalescer = new PullCoalescer(sink, { windowMs: 60_000, maxHeld: 3 });
    for (let i = 0; i < 3; i++) coalescer.offer(Subjects.manifestPull, pull({ ...A, digest: `sha256:${i}` }));
    assert.equal(sink.offered.length, 0);
    coalescer.offer(Subjects.manifestPull, pull({ ...A, digest: 'sha256:3' }));
    assert.deepEqual(
      sink.offered.map((o) => o.event.target.digest),
      ['sha256:0', 'sha256:1', 'sha256:2'],
    );
    coalescer.flush();
    assert.equal(sink.offered.length, 4);
  });

  it('publishes on its own once the window has passed', async () => {
    const sink = recordingSink();
    const coalescer = new PullCoalescer(sink, { windowMs: 5 });
    coalescer.offer(Subjects.manifestPull, pull(A));
    coalescer.offer(Subjects.manifestPull, pull(A));
    await eventually(() => assert.equal(sink.offered.length, 1, 'published after the window'));
    assert.equal(sink.offered[0]!.event.count, 2);
  });
});
