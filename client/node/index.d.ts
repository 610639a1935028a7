// TypeScript declarations of @singleflight/client (index.js); see
// docs/CLIENTS.md.
import type { ChannelCredentials, ChannelOptions } from '@grpc/grpc-js';

/** A PEM certificate or key: its text, or its bytes. */
export type Pem = string | Uint8Array;

/**
 * TLS settings. Each PEM is given inline or as a file, not both. Without a
 * CA, the system's roots are trusted; a certificate and its key together
 * make mutual TLS.
 */
export interface TlsOptions {
  /** The CA that signed the server's certificate. */
  ca?: Pem;
  caFile?: string;
  /** The client's certificate chain, for mutual TLS (with `key`). */
  cert?: Pem;
  certFile?: string;
  /** The private key of `cert`. */
  key?: Pem;
  keyFile?: string;
}

/**
 * Retries on UNAVAILABLE. `maxAttempts` counts the first attempt (1 turns
 * retries off; gRPC caps it at 5); the n-th retry waits a random time
 * between 0 and min(initialBackoffMs * multiplier ** (n - 1), maxBackoffMs).
 */
export interface RetryPolicy {
  maxAttempts: number;
  initialBackoffMs: number;
  maxBackoffMs: number;
  multiplier: number;
}

export interface ClientOptions {
  /** Default deadline of each call in milliseconds; null for none. Default 30000. */
  timeoutMs?: number | null;
  /**
   * Connect with TLS: true trusts the system's roots; an object sets the CA
   * and, for mutual TLS, the client's certificate and key. Exclusive with
   * `credentials`.
   */
  tls?: boolean | TlsOptions;
  /** Any gRPC channel credentials (default plaintext). Exclusive with `tls`. */
  credentials?: ChannelCredentials;
  /** Sent as `authorization: Bearer TOKEN` with every call ('' for none). */
  token?: string;
  /** A file holding the token (surrounding whitespace dropped). Exclusive with `token`. */
  tokenFile?: string;
  /** Overrides of DEFAULT_RETRY. */
  retry?: Partial<RetryPolicy>;
  /** Where singleflight/v1/singleflight.proto is; default the package's own copy. */
  protoDir?: string;
  /** The largest reply accepted, -1 for no limit. Default DEFAULT_MAX_RECEIVE_MESSAGE_BYTES. */
  maxReceiveMessageBytes?: number;
  /** More gRPC channel options; they override the client's own. */
  channelOptions?: ChannelOptions;
}

/** Per-call deadline in milliseconds: undefined for the client's, null for none. */
export interface CallOptions {
  timeoutMs?: number | null;
}

export interface DoOptions extends CallOptions {
  /** '' (the default) selects the server's default fetcher. */
  fetcher?: string;
  /** Handed to the fetcher if this call starts the flight; a string is sent as UTF-8. */
  payload?: string | Uint8Array;
}

export interface ForgetOptions extends CallOptions {
  fetcher?: string;
}

export interface DoResult {
  value: Buffer;
  /** Whether the flight had other callers. */
  shared: boolean;
}

export interface Flight {
  fetcher: string;
  key: string;
  waiters: number;
  ageMs: number;
  forgotten: boolean;
}

/** One request of a stream; a missing id becomes the request's position (1, 2, ...). */
export interface StreamRequest {
  key: string;
  fetcher?: string;
  payload?: string | Uint8Array;
  /** A safe non-negative integer (below 2^53). */
  id?: number;
}

/** The result of one stream request: `error` is set if it failed. */
export interface StreamResult {
  id: number;
  /** The request, with its id and defaults filled in. */
  request: Required<StreamRequest>;
  value: Buffer;
  shared: boolean;
  error: SingleFlightError | null;
}

/** A client of one singleflightd (or a proxy in front of several). */
export class Client {
  /**
   * @param target HOST:PORT
   * @throws TypeError on contradictory options (tls with credentials, a
   *     certificate without its key, ...), or Error if a file cannot be read
   */
  constructor(target: string, options?: ClientOptions);

  /** Closes the channel; calls in progress are cancelled. */
  close(): void;

  /**
   * Joins or starts the flight for (fetcher, key). Rejects with
   * SingleFlightError.
   */
  do(key: string, options?: DoOptions): Promise<DoResult>;

  /** Go's Forget: whether a flight for the key was in progress. Never retried. */
  forget(key: string, options?: ForgetOptions): Promise<boolean>;

  /** The flights in progress on the server, oldest first. */
  inflight(options?: CallOptions): Promise<Flight[]>;

  /**
   * Go's DoChan on one DoStream: yields one result per request as each
   * completes. A failure of the stream itself throws SingleFlightError;
   * leaving the loop early cancels the stream.
   */
  stream(
    requests: Iterable<StreamRequest | string> | AsyncIterable<StreamRequest | string>,
    options?: CallOptions,
  ): AsyncGenerator<StreamResult, void, undefined>;
}

/** The names of gRPC's status codes. */
export type StatusCodeName =
  | 'OK'
  | 'CANCELLED'
  | 'UNKNOWN'
  | 'INVALID_ARGUMENT'
  | 'DEADLINE_EXCEEDED'
  | 'NOT_FOUND'
  | 'ALREADY_EXISTS'
  | 'PERMISSION_DENIED'
  | 'RESOURCE_EXHAUSTED'
  | 'FAILED_PRECONDITION'
  | 'ABORTED'
  | 'OUT_OF_RANGE'
  | 'UNIMPLEMENTED'
  | 'INTERNAL'
  | 'UNAVAILABLE'
  | 'DATA_LOSS'
  | 'UNAUTHENTICATED';

/** A call, or one stream item, failed with a gRPC status. */
export class SingleFlightError extends Error {
  constructor(code: number, details: string);
  name: 'SingleFlightError';
  /** The numeric gRPC code (compare with grpc.status.NOT_FOUND, ...). */
  code: number;
  /** The code's name: 'NOT_FOUND', 'UNAUTHENTICATED', ... */
  codeName: StatusCodeName;
  /** The server's message. */
  details: string;
  /** The error of a failed call (a grpc-js ServiceError). */
  static fromServiceError(error: { code?: number; details?: string; message: string }):
    SingleFlightError;
}

/** 'x-flight-key': the routing header every call naming a key sends. */
export const FLIGHT_KEY_HEADER: 'x-flight-key';

/**
 * The x-flight-key value of (fetcher, key): FNV-1a 64 over fetcher, 0x00 and
 * key (UTF-8), as 16 lower-case hex digits.
 */
export function flightKey(fetcher: string, key: string): string;

/** The default retry policy: 4 attempts, 100 ms doubling up to 2 s. */
export const DEFAULT_RETRY: Readonly<RetryPolicy>;

/** The largest reply accepted by default: 64 MiB and 64 KiB. */
export const DEFAULT_MAX_RECEIVE_MESSAGE_BYTES: number;
