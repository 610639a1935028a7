// The x-flight-key routing header, as the C++ and Python clients compute it.

export const FLIGHT_KEY_HEADER = 'x-flight-key';

const FNV64_OFFSET_BASIS = 0xcbf29ce484222325n;
const FNV64_PRIME = 0x100000001b3n;
const UINT64_MASK = (1n << 64n) - 1n;

/**
 * The x-flight-key value of (fetcher, key): FNV-1a 64 over the UTF-8 bytes of
 * fetcher, one 0x00 byte, and the UTF-8 bytes of key, as 16 lower-case hex
 * digits. The fetcher is hashed as sent: '' (the server's default) and the
 * default's name hash differently.
 * @param {string} fetcher
 * @param {string} key
 * @returns {string}
 */
export function flightKey(fetcher, key) {
  const bytes = Buffer.concat([
    Buffer.from(fetcher, 'utf8'),
    Buffer.from([0]),
    Buffer.from(key, 'utf8'),
  ]);
  let hash = FNV64_OFFSET_BASIS;
  for (const byte of bytes) {
    hash = ((hash ^ BigInt(byte)) * FNV64_PRIME) & UINT64_MASK;
  }
  return hash.toString(16).padStart(16, '0');
}
