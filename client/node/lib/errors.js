// The error every failed call rejects with.
import grpc from '@grpc/grpc-js';

const CODE_NAMES = Object.fromEntries(
  Object.entries(grpc.status).map(([name, code]) => [code, name]),
);

/**
 * A call, or one DoStream item, failed with a gRPC status. `code` is the
 * numeric code (compare with grpc.status.NOT_FOUND, ...), `codeName` its name
 * ('NOT_FOUND' for an unknown fetcher, 'DEADLINE_EXCEEDED' when the deadline
 * passed, 'UNAVAILABLE' when the server could not be reached, ...), `details`
 * the server's message.
 */
export class SingleFlightError extends Error {
  /**
   * @param {number} code
   * @param {string} details
   */
  constructor(code, details) {
    const codeName = CODE_NAMES[code] ?? 'UNKNOWN';
    super(`${codeName}: ${details}`);
    this.name = 'SingleFlightError';
    this.code = code;
    this.codeName = codeName;
    this.details = details;
  }

  /** The error of a failed call (a grpc-js ServiceError). */
  static fromServiceError(error) {
    return new SingleFlightError(error.code ?? grpc.status.UNKNOWN,
      error.details ?? error.message);
  }
}
