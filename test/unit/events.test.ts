/** subjectMatches (NATS subject wildcards, as the in-process bus applies them) and endpointWants (Distribution's ignore rules). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { endpointWants, type WebhookEndpoint } from '../../libs/config/index.js';
import { subjectMatches } from '../../libs/events/bus.js';

describe('subjectMatches', () => {
  const cases: Array<[string, string, boolean]> = [
    ['wharf.events.manifest.push', 'wharf.events.manifest.push', true],
    ['wharf.events.manifest.push', 'wharf.events.manifest.pull', false],
    ['wharf.events.>', 'wharf.events.manifest.push', true],
    ['wharf.events.>', 'wharf.events', false],
    ['wharf.events.>', 'wharf.other.manifest.push', false],
    ['wharf.events.*.push', 'wharf.events.blob.push', true],
    ['wharf.events.*.push', 'wharf.events.blob.pull', false],
    ['wharf.events.*', 'wharf.events.blob.push', false],
    ['wharf.events.*.*', 'wharf.events.blob.push', true],
    ['wharf.events.manifest', 'wharf.events.manifest.push', false],
    ['wharf.events.manifest.push.extra', 'wharf.events.manifest.push', false],
    ['>', 'anything.at.all', true],
    ['*', 'one', true],
    ['*', 'one.two', false],
  ];
  for (const [pattern, subject, expected] of cases) {
    it(`${pattern} ${expected ? 'matches' : 'does not match'} ${subject}`, () => assert.equal(subjectMatches(pattern, subject), expected));
  }
});

describe('endpointWants', () => {
  const endpoint = (over: Partial<WebhookEndpoint> = {}): WebhookEndpoint => ({
    name: 'hook',
    url: 'http://127.0.0.1:1/',
    headers: {},
    timeoutMs: 1000,
    threshold: 3,
    backoffMs: 100,
    maxBackoffMs: 1000,
    maxAttempts: 3,
    concurrency: 1,
    disabled: false,
    ignoredMediaTypes: [],
    ignoredActions: [],
    secret: '',
    ...over,
  });
  const push = { action: 'push', target: { mediaType: 'application/vnd.oci.image.manifest.v1+json' } };

  it('wants every event by default', () => assert.equal(endpointWants(endpoint(), push), true));
  it('a disabled endpoint wants none', () => assert.equal(endpointWants(endpoint({ disabled: true }), push), false));
  it('ignores an ignored action', () => assert.equal(endpointWants(endpoint({ ignoredActions: ['push'] }), push), false));
  it('keeps other actions', () => assert.equal(endpointWants(endpoint({ ignoredActions: ['pull'] }), push), true));
  it('ignores an ignored media type', () => assert.equal(endpointWants(endpoint({ ignoredMediaTypes: [push.target.mediaType] }), push), false));
  it('an event without a media type is not ignored by media type', () =>
    assert.equal(endpointWants(endpoint({ ignoredMediaTypes: [push.target.mediaType] }), { action: 'delete' }), true));
});
