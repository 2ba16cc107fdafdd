/** ifNoneMatchHits: whether If-None-Match names a listing's current ETag (weak comparison, RFC 9110). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ifNoneMatchHits } from '../../services/api/routes/wharf.js';

describe('ifNoneMatchHits', () => {
  const etag = '"abc"';
  const cases: Array<[string | string[] | undefined, boolean]> = [
    [undefined, false],
    ['', false],
    ['"abc"', true],
    ['W/"abc"', true],
    ['"other"', false],
    ['"other", "abc"', true],
    ['"other","abc"', true],
    [['"other"', '"abc"'], true],
    ['*', true],
    ['abc', false],
    ['"ABC"', false],
  ];
  for (const [header, expected] of cases) {
    it(`${JSON.stringify(header)} ${expected ? 'hits' : 'misses'} ${etag}`, () => assert.equal(ifNoneMatchHits(header, etag), expected));
  }
  it('a weak current ETag is hit by its strong form', () => assert.equal(ifNoneMatchHits('"abc"', 'W/"abc"'), true));
});
