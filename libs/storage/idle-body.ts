import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';

/** The error an S3 response body ends with when S3 stops sending it. */
export class BodyStalledError extends Error {
  override readonly name = 'BodyStalledError';
  constructor(ms: number) {
    super(`S3 sent no byte of the response body for ${ms} ms`);
  }
}

/**
 * Ends `body`, an HTTP response being received, with BodyStalledError when its socket brings no
 * byte for `ms` while the body wants more, and destroys the socket with it (it never goes back to
 * the pool). A body received whole, or whose buffer is full is not waiting on S3 but on its reader (a slow client
 * holds the GET back): then the socket is paused on purpose, and the timer only starts over.
 */
export function failWhenIdle(body: Readable, ms: number): void {
  const socket = (body as Readable & { socket?: Socket | null }).socket;
  if (!socket || socket.destroyed || !(ms > 0) || body.readableEnded) return;
  const onTimeout = () => {
    if ((body as Readable & { complete?: boolean }).complete) return done(); // all received; the reader has the rest
    if (body.readableLength >= body.readableHighWaterMark) {
      socket.setTimeout(ms);
      return;
    }
    done();
    body.destroy(new BodyStalledError(ms));
    socket.destroy();
  };
  const done = () => {
    socket.setTimeout(0);
    socket.off('timeout', onTimeout);
    body.off('end', done);
    body.off('close', done);
  };
  socket.on('timeout', onTimeout);
  body.once('end', done);
  body.once('close', done);
  socket.setTimeout(ms);
}
