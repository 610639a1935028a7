// Retries on UNAVAILABLE, carried out by gRPC from the channel's config.

const SERVICE = 'singleflight.v1.SingleFlight';
// Forget is left out: a late second Forget could forget a flight that started
// after the first one.
const RETRIED = [
  { service: SERVICE, method: 'Do' },
  { service: SERVICE, method: 'DoStream' },
  { service: SERVICE, method: 'InFlight' },
  { service: 'grpc.health.v1.Health', method: 'Check' },
];

/**
 * The C++ client's defaults. `maxAttempts` counts the first attempt (1 turns
 * retries off; gRPC caps it at 5); the n-th retry waits a random time
 * between 0 and min(initialBackoffMs * multiplier ** (n - 1), maxBackoffMs).
 */
export const DEFAULT_RETRY = Object.freeze({
  maxAttempts: 4,
  initialBackoffMs: 100,
  maxBackoffMs: 2000,
  multiplier: 2,
});

/**
 * The channel's service config (JSON) that applies `retry`.
 * @param {typeof DEFAULT_RETRY} retry
 * @returns {string}
 */
export function retryServiceConfig(retry) {
  const { maxAttempts, initialBackoffMs, maxBackoffMs, multiplier } = {
    ...DEFAULT_RETRY,
    ...retry,
  };
  if (maxAttempts <= 1) return '{}';
  const seconds = (ms) => `${(ms / 1000).toFixed(3)}s`;
  return JSON.stringify({
    methodConfig: [{
      name: RETRIED,
      retryPolicy: {
        maxAttempts,
        initialBackoff: seconds(initialBackoffMs),
        maxBackoff: seconds(maxBackoffMs),
        backoffMultiplier: multiplier,
        retryableStatusCodes: ['UNAVAILABLE'],
      },
    }],
  });
}
