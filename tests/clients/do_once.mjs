// Calls Do once with the Node client; prints the reply as sfctl --json does.
//
// Usage: node do_once.mjs TARGET KEY FETCHER
// Prints {"value": BASE64, "shared": BOOL}; on failure, "CODE: details" on
// stderr and exit status 1.
import { Client } from '../../client/node/index.js';

const [target, key, fetcher] = process.argv.slice(2);
const client = new Client(target, { timeoutMs: 20000 });
try {
  const { value, shared } = await client.do(key, { fetcher });
  console.log(JSON.stringify({ value: value.toString('base64'), shared }));
} catch (error) {
  console.error(error.message);
  process.exitCode = 1;
} finally {
  client.close();
}
