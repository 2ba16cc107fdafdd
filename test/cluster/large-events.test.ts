/**
 * One oversized event must not stall the outbox (cluster mode, real NATS with its default
 * 1 MiB max_payload): events are bounded by design, and a row the server still refuses is
 * dead-lettered and counted while the events after it flow.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { connect } from 'nats';
import { MAX_EVENT_BYTES, buildEvent, type RegistryEvent } from '../../libs/events/index.js';
import { NatsBus } from '../../libs/events/nats-bus.js';
import { outbox } from '../../libs/metadata/index.js';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { deleteStream } from '../helpers/nats.js';
import { OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, blobOf, pushBlob, pushImage, putManifest, randomBlob, sha256 } from '../helpers/oci.js';
import { eventually } from '../helpers/wait.js';

let cluster: TestCluster | undefined;
let skip: string | undefined;
let bus: NatsBus | undefined;
const received: Array<{ subject: string; event: RegistryEvent }> = [];

before(async () => {
  const started = await startTestCluster({ 'events.pull': false });
  if ('skip' in started) {
    skip = started.skip;
    return;
  }
  cluster = started;
  bus = await NatsBus.connect({ servers: cluster.config['nats.url'], stream: cluster.config['nats.stream'], subjectPrefix: cluster.config['nats.subjectprefix'] });
  const unsubscribe = bus.subscribe('wharf.events.>', (subject, event) => void received.push({ subject, event }));
  await unsubscribe.ready;
});

after(async () => {
  await bus?.close();
  if (cluster) await deleteStream(cluster.config['nats.url'], cluster.config['nats.stream']);
  await cluster?.close();
});

const pushesOf = (repository: string) => received.filter((r) => r.subject === 'wharf.events.manifest.push' && r.event.target.repository === repository);

describe('oversized events (cluster, NATS max_payload 1 MiB)', () => {
  it('the NATS server under test has the default 1 MiB max_payload', async (t) => {
    if (skip) return t.skip(skip);
    const nc = await connect({ servers: cluster!.config['nats.url'] });
    assert.equal(nc.info?.max_payload, 1024 * 1024);
    await nc.close();
  });

  it('a manifest listing 8,000 layers is published with its references cut, and the pushes after it flow', async (t) => {
    if (skip) return t.skip(skip);
    const base = cluster!.url;
    const config = blobOf(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
    const layer = randomBlob(512);
    assert.equal((await pushBlob(base, 'big/app', config)).status, 201);
    assert.equal((await pushBlob(base, 'big/app', layer)).status, 201);
    // ~1.3 MB of descriptors: the event listing them all would be over NATS's max_payload.
    const body = JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: OCI_CONFIG, digest: config.digest, size: config.size },
      layers: Array.from({ length: 8000 }, () => ({ mediaType: OCI_LAYER, digest: layer.digest, size: layer.size })),
    });
    const res = await putManifest(base, 'big/app', 'v1', body, OCI_MANIFEST);
    assert.equal(res.status, 201, await res.text());
    await pushImage(base, 'big/after', 'v1');

    const [after] = await eventually(
      () => {
        const found = pushesOf('big/after');
        assert.equal(found.length, 1);
        return found;
      },
      60_000,
      100,
    );
    assert.ok(after);
    const [big] = await eventually(
      () => {
        const found = pushesOf('big/app');
        assert.equal(found.length, 1);
        return found;
      },
      60_000,
      100,
    );
    const event = big!.event;
    assert.equal(event.target.digest, sha256(body));
    assert.equal(event.target.referencesTotal, 8001, 'the config and 8,000 layers');
    assert.ok(event.target.references!.length > 100 && event.target.references!.length < 8001);
    assert.ok(Buffer.byteLength(JSON.stringify(event)) <= MAX_EVENT_BYTES);
    assert.match(event.target.url!, /\/v2\/big\/app\/manifests\/sha256:/, 'where a consumer gets the full list');
  });

  it('an outbox row the server refuses (over max_payload) is dead-lettered and counted; the events after it flow', async (t) => {
    if (skip) return t.skip(skip);
    const db = cluster!.nodes[0]!.database.db;
    // As an older Wharf (before events were bounded) could have written it.
    const context = { request: { id: 'old', addr: '', host: '', method: 'PUT', useragent: 'old' }, actor: {}, source: { addr: '', instanceID: 'old' } };
    const huge = buildEvent('push', { repository: 'huge/app' }, context);
    (huge.target as unknown as Record<string, unknown>).padding = 'x'.repeat(1_500_000);
    const eventId = randomUUID();
    huge.id = eventId;
    await outbox.appendOutbox(db, [{ eventId, subject: 'wharf.events.manifest.push', payload: huge }]);
    await pushImage(cluster!.url, 'huge/after', 'v1');

    await eventually(() => assert.equal(pushesOf('huge/after').length, 1), 60_000, 100);
    const row = await eventually(
      async () => {
        const r = await db.selectFrom('outbox').select(['published_at', 'dead_lettered_at', 'dead_letter_error']).where('event_id', '=', eventId).executeTakeFirstOrThrow();
        assert.ok(r.dead_lettered_at);
        return r;
      },
      60_000,
      100,
    );
    assert.equal(row.published_at, null);
    assert.match(row.dead_letter_error ?? '', /max_payload/);
    assert.equal(pushesOf('huge/app').length, 0);
    assert.equal((await outbox.outboxStats(db)).backlog, 0, 'nothing left waiting behind it');

    const metrics = await (await fetch(`${cluster!.nodes[0]!.url}/metrics`)).text();
    assert.match(metrics, /^wharf_outbox_dead_letters 1$/m);
    const total = Number(/^wharf_outbox_dead_lettered_total (\d+)$/m.exec(metrics)?.[1]);
    assert.equal(total, 1);
  });
});
