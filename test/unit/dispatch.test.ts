/** matchEndpoint: the path after /v2/ to an endpoint, with slashes in names and the greedy match Distribution's router makes. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { matchEndpoint } from '../../services/api/dispatch.js';

const DIGEST = `sha256:${'a'.repeat(64)}`;

describe('matchEndpoint', () => {
  const cases: Array<[string, unknown]> = [
    ['', { kind: 'base' }],
    ['_catalog', { kind: 'catalog' }],
    ['team/app/tags/list', { kind: 'tags', name: 'team/app' }],
    ['a/b/c/manifests/v1', { kind: 'manifest', name: 'a/b/c', reference: 'v1' }],
    [`app/manifests/${DIGEST}`, { kind: 'manifest', name: 'app', reference: DIGEST }],
    ['app/blobs/uploads/', { kind: 'uploads', name: 'app' }],
    ['app/blobs/uploads', { kind: 'uploads', name: 'app' }],
    ['app/blobs/uploads/0b8a3f52', { kind: 'upload', name: 'app', id: '0b8a3f52' }],
    [`app/blobs/${DIGEST}`, { kind: 'blob', name: 'app', digest: DIGEST }],
    [`app/referrers/${DIGEST}`, { kind: 'referrers', name: 'app', digest: DIGEST }],
    ['_oci/ext/discover', { kind: 'extensions' }],
    ['team/app/_oci/ext/discover', { kind: 'extensions', name: 'team/app' }],
    ['_wharf/repositories', { kind: 'namespace', prefix: '' }],
    ['team/_wharf/repositories', { kind: 'namespace', prefix: 'team' }],
    ['team/app/_wharf/manifests', { kind: 'manifestListing', name: 'team/app' }],
    ['team/app/_wharf/tags', { kind: 'tagDetails', name: 'team/app' }],
    ['team/app/_wharf/tags/v1/history', { kind: 'tagHistory', name: 'team/app', tag: 'v1' }],
    // Greedy: a repository may itself be called "manifests" or "blobs".
    ['manifests/manifests/v1', { kind: 'manifest', name: 'manifests', reference: 'v1' }],
    ['x/blobs/blobs/uploads/', { kind: 'uploads', name: 'x/blobs' }],
    ['tags/list/tags/list', { kind: 'tags', name: 'tags/list' }],
  ];
  for (const [path, expected] of cases) {
    it(`/v2/${path}`, () => assert.deepEqual(matchEndpoint(path), expected));
  }

  for (const path of ['app', 'app/manifests', 'app/manifests/', 'app/manifests/a/b', 'tags/list', 'app/blobs/uploads/a/b', '_catalog/x', 'app/nothing/here']) {
    it(`/v2/${path} is no endpoint`, () => assert.equal(matchEndpoint(path), undefined));
  }
});
