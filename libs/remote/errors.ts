/**
 * Why a request to another registry failed. `unavailable` covers what a cache treats as "the
 * upstream is down": no connection, a timeout, 5xx or 429 from every URL tried.
 */
export type RemoteFailure = 'unavailable' | 'unauthorized' | 'protocol';

export class RemoteError extends Error {
  constructor(
    readonly failure: RemoteFailure,
    message: string,
    /** The last HTTP status seen, when a response came back. */
    readonly status?: number,
  ) {
    super(message);
    this.name = 'RemoteError';
  }
}

/** Socket-level failures that say nothing about the request itself: worth another try elsewhere. */
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ECONNABORTED', 'UND_ERR_SOCKET']);

export function isNetworkError(err: unknown): boolean {
  const code = (err as { code?: unknown })?.code;
  return typeof code === 'string' && (NETWORK_CODES.has(code) || code.startsWith('ERR_SSL') || code === 'ERR_STREAM_PREMATURE_CLOSE');
}

/** Whether an HTTP status means "try again or elsewhere" rather than an answer. */
export function isRetryableStatus(status: number): boolean {
  return status >= 500 || status === 429 || status === 408;
}
