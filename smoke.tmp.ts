import { after, before, it } from 'node:test';
import { startTestWharf } from './test/helpers/server.js';
import { pushImage } from './test/helpers/oci.js';
let w: any;
before(async () => { w = await startTestWharf(); });
after(async () => { console.error('closing'); await w.close(); console.error('closed'); });
it('x', async () => {
  await pushImage(w.base, 'zz/one', 'v1');
  console.error('pushed');
});
