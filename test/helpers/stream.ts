import { AckPolicy, DeliverPolicy, connect } from 'nats';

/** Every message now in a JetStream stream, read with a throwaway consumer: subject and event id of each. */
export async function readStream(url: string, stream: string): Promise<Array<{ subject: string; id: string }>> {
  const nc = await connect({ servers: url, reconnect: false });
  try {
    const jsm = await nc.jetstreamManager();
    const total = (await jsm.streams.info(stream)).state.messages;
    const info = await jsm.consumers.add(stream, { ack_policy: AckPolicy.None, deliver_policy: DeliverPolicy.All });
    const consumer = await nc.jetstream().consumers.get(stream, info.name);
    const out: Array<{ subject: string; id: string }> = [];
    while (out.length < total) {
      const batch = await consumer.fetch({ max_messages: Math.min(256, total - out.length), expires: 2_000 });
      let got = 0;
      for await (const m of batch) {
        out.push({ subject: m.subject, id: (m.json() as { id: string }).id });
        got++;
      }
      if (got === 0) break;
    }
    await jsm.consumers.delete(stream, info.name).catch(() => {});
    return out;
  } finally {
    await nc.close();
  }
}
