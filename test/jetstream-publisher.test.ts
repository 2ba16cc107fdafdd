/** JetStream publishes acknowledged on one shared reply subscription: stored, refused, unanswered, closed. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connect, type NatsConnection } from 'nats';
import { JetStreamPublisher } from '../libs/events/jetstream-publisher.js';
import { NatsBus } from '../libs/events/nats-bus.js';
import { deleteStream, natsUnavailable, natsUrl, uniqueStreamNames } from './helpers/nats.js';

const url = natsUrl();
const unavailable = await natsUnavailable(url);

describe('JetStreamPublisher', { skip: unavailable ?? false }, () => {
  const names = uniqueStreamNames();
  let bus: NatsBus;
  let nc: NatsConnection;
  const bytes = new TextEncoder().encode('{}');

  before(async () => {
    // The bus creates the stream (subjects <prefix>.>).
    bus = await NatsBus.connect({ servers: url, ...names });
    nc = await connect({ servers: url });
  });
  after(async () => {
    await nc?.close();
    await bus?.close();
    await deleteStream(url, names.stream);
  });

  it('resolves once the stream stored the message, and again for a message id it already has', async () => {
    const publisher = new JetStreamPublisher(nc, 5_000);
    try {
      await Promise.all(Array.from({ length: 50 }, (_, i) => publisher.publish(`${names.subjectPrefix}.manifest.push`, bytes, `id-${i}`)));
      await publisher.publish(`${names.subjectPrefix}.manifest.push`, bytes, 'id-0');
      const info = await (await nc.jetstreamManager()).streams.info(names.stream);
      assert.equal(info.state.messages, 50);
    } finally {
      publisher.close();
    }
  });

  it('rejects a message no stream takes (no responders)', async () => {
    const publisher = new JetStreamPublisher(nc, 60_000);
    try {
      await assert.rejects(publisher.publish(`wharf-nostream-${names.stream}.x`, bytes, 'lonely'), /did not take the message: 503/);
    } finally {
      publisher.close();
    }
  });

  it('rejects a publish nobody acknowledges once its time is up, and what is still waiting at close', async () => {
    const silent = nc.subscribe(`wharf-silent-${names.stream}.>`); // takes the message, never answers
    const publisher = new JetStreamPublisher(nc, 200);
    try {
      await assert.rejects(publisher.publish(`wharf-silent-${names.stream}.x`, bytes, 'unanswered'), /did not acknowledge within 200 ms/);
    } finally {
      publisher.close();
    }
    const later = new JetStreamPublisher(nc, 60_000);
    const waiting = later.publish(`wharf-silent-${names.stream}.y`, bytes, 'closed');
    later.close();
    await assert.rejects(waiting, /closed before JetStream acknowledged/);
    silent.unsubscribe();
  });
});
