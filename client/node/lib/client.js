// Client: promise-based calls to singleflight.v1.SingleFlight.
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';

import { SingleFlightError } from './errors.js';
import { FLIGHT_KEY_HEADER, flightKey } from './flight-key.js';
import { retryServiceConfig } from './retry.js';

const DEFAULT_PROTO_DIR = fileURLToPath(new URL('../../../proto', import.meta.url));
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

function routing(fetcher, key) {
  const metadata = new grpc.Metadata();
  metadata.set(FLIGHT_KEY_HEADER, flightKey(fetcher, key));
  return metadata;
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
 * its first request. UNAVAILABLE is retried as `retry` says (lib/retry.js).
 */
export class Client {
  #stub;
  #timeoutMs;

  /**
   * @param {string} target HOST:PORT
   * @param {object} [options]
   * @param {?number} [options.timeoutMs=30000] default deadline of each call
   * @param {grpc.ChannelCredentials} [options.credentials] default plaintext;
   *     for TLS, grpc.credentials.createSsl(rootCerts, key, certChain)
   * @param {object} [options.retry] overrides of DEFAULT_RETRY
   * @param {string} [options.protoDir] where singleflight/v1/singleflight.proto is
   * @param {?number} [options.maxReceiveMessageBytes] the largest reply
   *     accepted (-1 for no limit); by default the server's largest value
   * @param {object} [options.channelOptions] more gRPC channel options
   */
  constructor(target, {
    timeoutMs = 30000,
    credentials = grpc.credentials.createInsecure(),
    retry = {},
    protoDir = DEFAULT_PROTO_DIR,
    maxReceiveMessageBytes = DEFAULT_MAX_RECEIVE_MESSAGE_BYTES,
    channelOptions = {},
  } = {}) {
    const SingleFlight = loadService(protoDir);
    this.#stub = new SingleFlight(target, credentials, {
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
      { key, fetcher, payload: toBuffer(payload) }, routing(fetcher, key), timeoutMs);
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
      routing(fetcher, key), timeoutMs);
    return response.forgotten;
  }

  /**
   * The flights in progress on the server, oldest first.
   * @returns {Promise<Array<{fetcher: string, key: string, waiters: number,
   *     ageMs: number, forgotten: boolean}>>}
   */
  async inflight({ timeoutMs } = {}) {
    const response = await this.#unary('InFlight', {}, new grpc.Metadata(), timeoutMs);
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
    const call = this.#stub.DoStream(routing(first.fetcher, first.key),
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
