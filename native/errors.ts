/**
 * The native layer's own error type. `native/` imports nothing else of ours, so this mirrors the
 * toolkit's convention (a stable `code`) and adds what a system error carries in Node: `errno`
 * (negative, as libuv reports it) and `syscall`. Socket errors keep Node's own codes (`EADDRINUSE`,
 * `ECONNRESET`...), so code written against `net` keeps working.
 */
export type NativeErrorCode =
  | 'ERR_NATIVE_UNAVAILABLE'
  | 'ERR_VSOCK_ENDPOINT_INVALID'
  | 'ERR_NSM_UNAVAILABLE'
  | 'ERR_NSM_DEVICE'
  | 'ERR_NSM_RESPONSE_INVALID'
  | 'ERR_NSM_INVALID_ARGUMENT'
  | 'ERR_NSM_INVALID_INDEX'
  | 'ERR_NSM_INVALID_RESPONSE'
  | 'ERR_NSM_READ_ONLY_INDEX'
  | 'ERR_NSM_INVALID_OPERATION'
  | 'ERR_NSM_BUFFER_TOO_SMALL'
  | 'ERR_NSM_INPUT_TOO_LARGE'
  | 'ERR_NSM_INTERNAL_ERROR'
  | 'ERR_NSM_UNKNOWN_ERROR'
  | 'ERR_SEV_GUEST_UNAVAILABLE'
  | 'ERR_SEV_GUEST_IOCTL'
  | 'ERR_SEV_GUEST_RESPONSE_INVALID'
  | 'ERR_TSM_UNAVAILABLE'
  | 'ERR_TSM_PROVIDER'
  | 'ERR_TSM_PRIVLEVEL'
  | 'ERR_TSM_GENERATION'
  | 'ERR_TSM_OUTBLOB_INVALID'
  // system errors keep libuv's names (EADDRINUSE, ECONNRESET, ENOTTY, ...)
  | (string & {});

export interface NativeErrorOptions {
  cause?: unknown;
  errno?: number;
  syscall?: string;
}

export class NativeError extends Error {
  readonly code: NativeErrorCode;
  readonly errno: number | undefined;
  readonly syscall: string | undefined;

  constructor(code: NativeErrorCode, message: string, options: NativeErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.errno = options.errno;
    this.syscall = options.syscall;
  }
}

interface SystemErrorShape {
  message: string;
  code: string;
  errno?: number;
  syscall?: string;
}

function isSystemError(e: unknown): e is SystemErrorShape {
  return e instanceof Error && typeof (e as { code?: unknown }).code === 'string';
}

/** Re-types an error thrown by the addon (an Error with code/errno/syscall) as a NativeError. */
export function fromSystemError(e: unknown): NativeError {
  if (e instanceof NativeError) return e;
  if (isSystemError(e)) {
    return new NativeError(e.code, e.message, {
      errno: typeof e.errno === 'number' ? e.errno : undefined,
      syscall: typeof e.syscall === 'string' ? e.syscall : undefined,
    });
  }
  return new NativeError('ERR_NATIVE_UNAVAILABLE', 'unexpected error from the native addon', { cause: e });
}
