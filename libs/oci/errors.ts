/** The error codes of the OCI Distribution specification, with TOOMANYREQUESTS and UNAVAILABLE as Distribution adds them. */
export const ERROR_CODES = [
  'BLOB_UNKNOWN',
  'BLOB_UPLOAD_INVALID',
  'BLOB_UPLOAD_UNKNOWN',
  'DIGEST_INVALID',
  'MANIFEST_BLOB_UNKNOWN',
  'MANIFEST_INVALID',
  'MANIFEST_UNKNOWN',
  'NAME_INVALID',
  'NAME_UNKNOWN',
  'SIZE_INVALID',
  'TAG_INVALID',
  'UNAUTHORIZED',
  'DENIED',
  'UNSUPPORTED',
  'TOOMANYREQUESTS',
  'RANGE_INVALID',
  'PAYLOAD_TOO_LARGE',
  'PAGINATION_NUMBER_INVALID',
  'UNAVAILABLE',
  'UNKNOWN',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

/**
 * What went wrong beyond the code, where a client is told differently: `too-large`, a body
 * passed a limit; `out-of-range`, the request does not fit the upload or blob it names (its
 * offset, its size, another writer); `bad-parameter`, a query parameter is not understood.
 * The API turns code and reason into a status (services/api/errors.ts).
 */
export type ErrorReason = 'too-large' | 'out-of-range' | 'bad-parameter';

export interface ErrorOptions {
  detail?: unknown;
  reason?: ErrorReason;
  /** The bytes an upload session holds, when the error is about one: where the client resumes. */
  uploadOffset?: number;
  /** Seconds after which a retry may succeed. */
  retryAfterSeconds?: number;
}

/** An error a client caused or must be told about; rendered as OCI error JSON. It says nothing of HTTP. */
export class RegistryError extends Error {
  readonly code: ErrorCode;
  readonly detail: unknown;
  readonly reason: ErrorReason | undefined;
  readonly uploadOffset: number | undefined;
  readonly retryAfterSeconds: number | undefined;

  constructor(code: ErrorCode, message: string, opts: ErrorOptions = {}) {
    super(message);
    this.code = code;
    this.detail = opts.detail;
    this.reason = opts.reason;
    this.uploadOffset = opts.uploadOffset;
    this.retryAfterSeconds = opts.retryAfterSeconds;
  }

  toJSON(): { errors: Array<{ code: string; message: string; detail?: unknown }> } {
    const entry: { code: string; message: string; detail?: unknown } = { code: this.code, message: this.message };
    if (this.detail !== undefined) entry.detail = this.detail;
    return { errors: [entry] };
  }
}

/** A query parameter the endpoint cannot use: 400 UNSUPPORTED naming it. */
export function badParameter(message: string, detail: Record<string, string>): RegistryError {
  return new RegistryError('UNSUPPORTED', message, { reason: 'bad-parameter', detail });
}
