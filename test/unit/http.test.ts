/** parseRange and chunkInfo: the Range of a blob GET and the Content-Range/Content-Length of an upload chunk. */
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { describe, it } from 'node:test';
import { RegistryError } from '../../libs/oci/index.js';
import { chunkInfo, parseRange } from '../../services/api/http.js';

describe('parseRange', () => {
  const size = 1000;
  const cases: Array<[string | undefined, ReturnType<typeof parseRange>]> = [
    [undefined, undefined],
    ['', undefined],
    ['bytes=0-99', { start: 0, end: 99 }],
    ['bytes=100-', { start: 100, end: 999 }],
    ['bytes=0-5000', { start: 0, end: 999 }],
    ['bytes=-100', { start: 900, end: 999 }],
    ['bytes=-5000', { start: 0, end: 999 }],
    ['bytes=999-999', { start: 999, end: 999 }],
    ['  bytes=1-2  ', { start: 1, end: 2 }],
    ['bytes=1000-', 'unsatisfiable'],
    ['bytes=1000-2000', 'unsatisfiable'],
    ['bytes=500-100', 'unsatisfiable'],
    ['bytes=-0', 'unsatisfiable'],
    // Forms Wharf does not serve are ignored (the whole blob), as RFC 9110 allows.
    ['bytes=-', undefined],
    ['bytes=0-1,5-6', undefined],
    ['items=0-1', undefined],
    ['bytes=a-b', undefined],
  ];
  for (const [header, expected] of cases) {
    it(`${JSON.stringify(header)} of ${size} bytes`, () => assert.deepEqual(parseRange(header, size), expected));
  }

  it('a suffix range of an empty blob is unsatisfiable', () => assert.equal(parseRange('bytes=-1', 0), 'unsatisfiable'));
  it('any first-byte range of an empty blob is unsatisfiable', () => assert.equal(parseRange('bytes=0-', 0), 'unsatisfiable'));
});

describe('chunkInfo', () => {
  const request = (headers: Record<string, string>) => ({ headers }) as unknown as IncomingMessage;
  const refused = (headers: Record<string, string>, code: string) =>
    assert.throws(
      () => chunkInfo(request(headers)),
      (err) => err instanceof RegistryError && err.code === code,
    );

  it('no headers: nothing known', () => assert.deepEqual(chunkInfo(request({})), {}));
  it('Content-Length alone', () => assert.deepEqual(chunkInfo(request({ 'content-length': '42' })), { length: 42 }));
  it('Content-Range <start>-<end>, inclusive', () =>
    assert.deepEqual(chunkInfo(request({ 'content-range': '100-199', 'content-length': '100' })), { length: 100, range: { start: 100, end: 199 } }));
  for (const header of ['bytes 0-9', 'bytes=0-9', '0-9/10', '0-9/*', ' 0-9 ']) {
    it(`Content-Range ${JSON.stringify(header)} is accepted as 0-9`, () => assert.deepEqual(chunkInfo(request({ 'content-range': header })), { range: { start: 0, end: 9 } }));
  }
  for (const header of ['0-', '-9', 'abc', '0-9-10', 'bytes 0 9', '']) {
    it(`Content-Range ${JSON.stringify(header)}: RANGE_INVALID`, () => refused({ 'content-range': header }, 'RANGE_INVALID'));
  }
  for (const header of ['-1', '1.5', 'ten', '0x10', '']) {
    it(`Content-Length ${JSON.stringify(header)}: SIZE_INVALID`, () => refused({ 'content-length': header }, 'SIZE_INVALID'));
  }
});
