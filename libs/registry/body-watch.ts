import type { Readable } from 'node:stream';

/**
 * Calls `die` once if `body` fails or closes before its end, including when that already
 * happened before this call: a request body read after an await (the session's lock query) may
 * have died while nobody listened, and a dead stream emits nothing more. Returns the unsubscribe.
 */
export function watchBody(body: Readable, die: (err?: Error) => void): () => void {
  let done = false;
  const fail = (err?: Error) => {
    if (done) return;
    done = true;
    die(err);
  };
  const onError = (err: Error) => fail(err);
  const onClose = () => {
    if (!body.readableEnded) fail();
  };
  const aborted = (body as Readable & { aborted?: boolean }).aborted === true;
  if (body.errored || aborted || (body.destroyed && !body.readableEnded)) {
    const cause = body.errored ?? undefined;
    process.nextTick(() => fail(cause));
    return () => {
      done = true;
    };
  }
  body.once('error', onError);
  body.once('close', onClose);
  return () => {
    done = true;
    body.off('error', onError);
    body.off('close', onClose);
  };
}
