// Worker thread of hash-pool.ts: resumable SHA-256 sessions (hash-wasm can save and load its state).
import { parentPort } from 'node:worker_threads';
import { createSHA256 } from 'hash-wasm';

const sessions = new Map();

parentPort.on('message', async (m) => {
  try {
    switch (m.op) {
      case 'open': {
        const hasher = await createSHA256();
        if (m.state) hasher.load(m.state);
        else hasher.init();
        sessions.set(m.id, hasher);
        parentPort.postMessage({ op: 'reply', seq: m.seq });
        break;
      }
      case 'update':
        sessions.get(m.id).update(m.chunk);
        parentPort.postMessage({ op: 'ack', id: m.id, bytes: m.chunk.byteLength });
        break;
      case 'save':
        parentPort.postMessage({ op: 'reply', seq: m.seq, value: sessions.get(m.id).save() });
        break;
      case 'digest': {
        const hasher = sessions.get(m.id);
        const saved = hasher.save();
        const hex = hasher.digest('hex');
        hasher.load(saved);
        parentPort.postMessage({ op: 'reply', seq: m.seq, value: hex });
        break;
      }
      case 'close':
        sessions.delete(m.id);
        break;
    }
  } catch (err) {
    parentPort.postMessage({ op: 'reply', seq: m.seq, error: String(err?.message ?? err) });
  }
});
