// @singleflight/client: a Node.js client for singleflightd
// (singleflight.v1.SingleFlight); types in index.d.ts, usage in the
// repository's docs/CLIENTS.md.
export { Client, DEFAULT_MAX_RECEIVE_MESSAGE_BYTES } from './lib/client.js';
export { SingleFlightError } from './lib/errors.js';
export { FLIGHT_KEY_HEADER, flightKey } from './lib/flight-key.js';
export { DEFAULT_RETRY } from './lib/retry.js';
