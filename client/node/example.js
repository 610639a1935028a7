// Calls singleflightd from Node.js: Do, a stream, InFlight and Forget.
//
// Usage: node client/node/example.js [HOST:PORT]
// Start a server first, for example scripts/run.sh (127.0.0.1:50051), and
// install the dependencies once: npm ci --prefix client/node.
import { Client, SingleFlightError } from './index.js';

const client = new Client(process.argv[2] ?? '127.0.0.1:50051', { timeoutMs: 5000 });
try {
  const { value, shared } = await client.do('user:42');
  console.log(`do: value=${value} shared=${shared}`);

  const requests = [{ key: 'a', id: 10 }, { key: 'b', id: 20 }, 'c'];
  for await (const reply of client.stream(requests)) {
    console.log(`stream: id=${reply.id} key=${reply.request.key}`,
      reply.error ? reply.error.message : `value=${reply.value}`);
  }

  for (const flight of await client.inflight()) console.log('in flight:', flight);
  console.log(`forget: forgotten=${await client.forget('user:42')}`);

  try {
    await client.do('user:42', { fetcher: 'no-such-fetcher' });
  } catch (error) {
    if (!(error instanceof SingleFlightError)) throw error;
    console.log(`error: code=${error.codeName} details=${error.details}`);
  }
} finally {
  client.close();
}
