import type { Endpoint } from '../dispatch.js';
import type { MethodTable } from '../call.js';

type Base = Extract<Endpoint, { kind: 'base' }>;

export const base: MethodTable<Base> = {
  GET: async ({ reply }) => reply.code(200).type('application/json').send('{}'),
  HEAD: async ({ reply }) => reply.code(200).send(),
};
