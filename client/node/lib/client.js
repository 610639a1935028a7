// Client: promise-based calls to singleflight.v1.SingleFlight.
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';

import { SingleFlightError } from './errors.js';
import { FLIGHT_KEY_HEADER, flightKey } from './flight-key.js';
import { retryServiceConfig } from './retry.js';

// The package's own copy of the wire API (tools/proto.js keeps it equal to
// the repository's proto/). google/protobuf/duration.proto, which it
// imports, is bundled with protobufjs (proto-loader's dependency) and needs
// no include directory.
const DEFAULT_PROTO_DIR = fileURLToPath(new URL('../proto', import.meta.url));
/**
 * The largest reply accepted by default: the server's largest value (a
 * fetcher's max_value_bytes, 64 MiB by default) and the reply's framing.
 * gRPC's own default, 4 MiB, would refuse the values the server sends.
 */
export const DEFAULT_MAX_RECEIVE_MESSAGE_BYTES = (64 << 20) + (64 << 10);
const services = new Map();

// The SingleFlight client constructor, loaded once per proto directory.
// keepCase: without it proto-loader renames snake_case fields, and the
// requests' original names would be silently dropped.
function loadService(protoDir) {
  if (!services.has(protoDir)) {
    const definition = protoLoader.loadSync('singleflight/v1/singleflight.proto', {
      includeDirs: [protoDir],
      keepCase: true,
      longs: Number,
      defaults: true,
    });
    services.set(protoDir,
      grpc.loadPackageDefinition(definition).singleflight.v1.SingleFlight);
  }
  return services.get(protoDir);
}

// A PEM option given inline (`pem`, a string or bytes) or as a file.
function pemOption(pem, file, name) {
  if (pem != null && file != null) {
    throw new TypeError(`tls.${name} and tls.${name}File are exclusive`);
  }
  if (file != null) return readFileSync(file);
  if (pem == null) return null;
  return typeof pem === 'string' ? Buffer.from(pem, 'utf8') : Buffer.from(pem);
}

const TLS_OPTIONS = ['ca', 'caFile', 'cert', 'certFile', 'key', 'keyFile'];

/**
 * The channel credentials of the `credentials` and `tls` options: TLS when
 * `tls` is true or an object (`ca` to trust instead of the system's roots;
 * `cert` and `key` for mutual TLS), else `credentials`, else plaintext.
 */
function channelCredentials(credentials, tls) {
  if (tls == null || tls === false) return credentials ?? grpc.credentials.createInsecure();
  if (credentials != null) {
    throw new TypeError('the credentials and tls options are exclusive');
  }
  if (tls !== true && (typeof tls !== 'object' || Array.isArray(tls))) {
    throw new TypeError('tls must be true, false or an object {ca, caFile, cert, ...}');
  }
  const options = tls === true ? {} : tls;
  const unknown = Object.keys(options).filter((name) => !TLS_OPTIONS.includes(name));
  if (unknown.length > 0) throw new TypeError(`unknown tls option ${unknown.join(', ')}`);
  const { ca, caFile, cert, certFile, key, keyFile } = options;
  if ((cert == null && certFile == null) !== (key == null && keyFile == null)) {
    throw new TypeError('mutual TLS needs both tls.cert (or certFile) and tls.key (or keyFile)');
  }
  const rootCerts = pemOption(ca, caFile, 'ca');
  const certChain = pemOption(cert, certFile, 'cert');
  const privateKey = pemOption(key, keyFile, 'key');
  return grpc.credentials.createSsl(rootCerts, privateKey, certChain);
}

/**
 * The bearer token of the `token` and `tokenFile` options, or null. A file's
 * surrounding whitespace is dropped, as the server and sfctl do.
 */
function bearerToken(token, tokenFile) {
  if (token != null && tokenFile != null) {
    throw new TypeError('the token and tokenFile options are exclusive');
  }
  const value = tokenFile != null ? readFileSync(tokenFile, 'utf8').trim() : token;
  if (tokenFile != null && value === '') throw new TypeError(`token file ${tokenFile} is empty`);
  if (value == null || value === '') return null;
  // A header value: printable ASCII. The token itself is never printed.
  if (typeof value !== 'string' || !/^[\x21-\x7e]+$/.test(value)) {
    throw new TypeError('the token must be printable ASCII without spaces');
  }
  return `Bearer ${value}`;
}

function toBuffer(payload) {
  return typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
}

// A stream request (an object or just a key) with its id filled in.
function numbered(request, position) {
  const { key, fetcher = '', payload = Buffer.alloc(0), id = position } =
    typeof request === 'string' ? { key: request } : request;
  if (!Number.isSafeInteger(id) || id < 0) {
    throw new RangeError(`stream request id ${id} is not a safe non-negative integer`);
  }
  return { key, fetcher, payload, id };
}

function streamResult(reply, request) {
  const failed = reply.status && reply.status.code !== 0;
  return {
    id: reply.id,
    request,
    value: failed ? Buffer.alloc(0) : reply.value,
    shared: failed ? false : reply.shared,
    error: failed ? new SingleFlightError(reply.status.code, reply.status.message) : null,
  };
}

/**
 * A client of one singleflightd (or a proxy in front of several).
 *
 * Every call has a deadline: the call's `timeoutMs`, or else the client's
 * (null for none). Failed calls reject with SingleFlightError. Calls that
 * name a key send the x-flight-key routing header; a stream sends the one of
 * its first request. Every call sends `authorization: Bearer TOKEN` if a
 * token is set. UNAVAILABLE is retried as `retry` says (lib/retry.js).
 */
export class Client {
  #stub;
  #timeoutMs;
  #authorization;

  /**
   * @param {string} target HOST:PORT
   * @param {object} [options]
   * @param {?number} [options.timeoutMs=30000] default deadline of each call
   * @param {boolean|object} [options.tls] connect with TLS: true (the
   *     system's roots), or {ca, caFile} to trust that CA instead and {cert,
   *     certFile, key, keyFile} for mutual TLS (PEM strings or Buffers, or
   *     files); exclusive with `credentials`
   * @param {grpc.ChannelCredentials} [options.credentials] any gRPC channel
   *     credentials; default plaintext
   * @param {string} [options.token] sent as `authorization: Bearer TOKEN`
   *     with every call
   * @param {string} [options.tokenFile] a file holding the token instead
   * @param {object} [options.retry] overrides of DEFAULT_RETRY
   * @param {string} [options.protoDir] where singleflight/v1/singleflight.proto is
   * @param {?number} [options.maxReceiveMessageBytes] the largest reply
   *     accepted (-1 for no limit); by default the server's largest value
   * @param {object} [options.channelOptions] more gRPC channel options
   */
  constructor(target, {
    timeoutMs = 30000,
    tls,
    credentials,
    token,
    tokenFile,
    retry = {},
    protoDir = DEFAULT_PROTO_DIR,
    maxReceiveMessageBytes = DEFAULT_MAX_RECEIVE_MESSAGE_BYTES,
    channelOptions = {},
  } = {}) {
    const channel = channelCredentials(credentials, tls);
    this.#authorization = bearerToken(token, tokenFile);
    const SingleFlight = loadService(protoDir);
    this.#stub = new SingleFlight(target, channel, {
      'grpc.service_config': retryServiceConfig(retry),
      'grpc.max_receive_message_length': maxReceiveMessageBytes,
      ...channelOptions,
    });
    this.#timeoutMs = timeoutMs;
  }

  /** Closes the channel; calls in progress are cancelled. */
  close() {
    this.#stub.close();
  }

  // A call's metadata: the token, if any, and the routing header of
  // (fetcher, key) unless fetcher is null.
  #metadata(fetcher, key) {
    const metadata = new grpc.Metadata();
    if (this.#authorization) metadata.set('authorization', this.#authorization);
    if (fetcher !== null) metadata.set(FLIGHT_KEY_HEADER, flightKey(fetcher, key));
    return metadata;
  }

  #callOptions(timeoutMs) {
    const ms = timeoutMs === undefined ? this.#timeoutMs : timeoutMs;
    return { deadline: ms === null ? Infinity : Date.now() + ms };
  }

  #unary(method, request, metadata, timeoutMs) {
    return new Promise((resolve, reject) => {
      this.#stub[method](request, metadata, this.#callOptions(timeoutMs),
        (error, response) => {
          if (error) reject(SingleFlightError.fromServiceError(error));
          else resolve(response);
        });
    });
  }

  /**
   * Joins or starts the flight for (fetcher, key); '' selects the server's
   * default fetcher. `payload` (Buffer or string) goes to the fetcher if this
   * call starts the flight. A failed flight rejects every caller that shared
   * it with the same error.
   * @returns {Promise<{value: Buffer, shared: boolean}>}
   */
  async do(key, { fetcher = '', payload = Buffer.alloc(0), timeoutMs } = {}) {
    const response = await this.#unary('Do',
      { key, fetcher, payload: toBuffer(payload) }, this.#metadata(fetcher, key),
      timeoutMs);
    return { value: response.value, shared: response.shared };
  }

  /**
   * Go's Forget: resolves to whether a flight for the key was in progress.
   * Its waiters still get its result; the next call starts a new flight.
   * Never retried.
   * @returns {Promise<boolean>}
   */
  async forget(key, { fetcher = '', timeoutMs } = {}) {
    const response = await this.#unary('Forget', { key, fetcher },
      this.#metadata(fetcher, key), timeoutMs);
    return response.forgotten;
  }

  /**
   * The flights in progress on the server, oldest first.
   * @returns {Promise<Array<{fetcher: string, key: string, waiters: number,
   *     ageMs: number, forgotten: boolean}>>}
   */
  async inflight({ timeoutMs } = {}) {
    const response = await this.#unary('InFlight', {}, this.#metadata(null), timeoutMs);
    return response.flights
      .map(({ fetcher, key, waiters, age, forgotten }) => ({
        fetcher,
        key,
        waiters,
        ageMs: (age ? age.seconds * 1000 + age.nanos / 1e6 : 0),
        forgotten,
      }))
      .sort((a, b) => b.ageMs - a.ageMs);
  }

  /**
   * Go's DoChan, multiplexed on one DoStream: sends every request (an object
   * {key, fetcher, payload, id} or just a key; a missing id becomes the
   * request's position, 1, 2, ...) without waiting, and yields one result
   * {id, request, value, shared, error} per request as each completes. A
   * failed item has `error` set and the stream goes on; a failure of the
   * stream itself throws SingleFlightError. Leaving the loop early cancels
   * the stream.
   * @param {Iterable|AsyncIterable} requests
   */
  async* stream(requests, { timeoutMs } = {}) {
    const iterator = (requests[Symbol.asyncIterator] ?? requests[Symbol.iterator])
      .call(requests);
    let next = await iterator.next();
    if (next.done) return;
    const first = numbered(next.value, 1);
    const call = this.#stub.DoStream(this.#metadata(first.fetcher, first.key),
      this.#callOptions(timeoutMs));
    const sent = new Map();
    let writeError = null;
    const write = async () => {
      let request = first;
      for (let position = 1; ; ++position) {
        sent.set(request.id, request);
        if (!call.write({ ...request, payload: toBuffer(request.payload) })) {
          await once(call, 'drain');
        }
        next = await iterator.next();
        if (next.done) break;
        request = numbered(next.value, position + 1);
      }
      call.end();
    };
    write().catch((error) => {
      writeError = error;
      call.cancel();
    });
    try {
      for await (const reply of call) yield streamResult(reply, sent.get(reply.id));
    } catch (error) {
      throw writeError ?? SingleFlightError.fromServiceError(error);
    } finally {
      call.cancel();
    }
    if (writeError) throw writeError;
  }
}
