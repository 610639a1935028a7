// Tests of the Node client against a live singleflightd and the fake.
//
// Run by interop_test.sh, which sets SF_TARGET (a singleflightd with a
// fetcher "slow" = echo:?delay=1s) and SF_FAKE_TARGET (fake_server.py), and
// by node_package_test.sh, which sets
//   SF_TOKEN_TARGET       a singleflightd (plaintext) that checks tokens:
//                         SF_CALLER_TOKEN_FILE's and SF_ADMIN_TOKEN_FILE's
//   SF_TLS_TARGET         one with TLS (certificate signed by SF_CERTS/ca.pem)
//                         that wants the caller token
//   SF_MTLS_TARGET        one with mutual TLS: it wants a client certificate
//                         signed by SF_CERTS/ca.pem (SF_CERTS/client.pem)
// Each suite runs only if its variables are set.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { Client, SingleFlightError, flightKey } from '../../client/node/index.js';

// The client's own gRPC.
const grpc = createRequire(new URL('../../client/node/index.js', import.meta.url))(
  '@grpc/grpc-js');

const { SF_TARGET: target, SF_FAKE_TARGET: fakeTarget } = process.env;
const {
  SF_TOKEN_TARGET: tokenTarget,
  SF_CALLER_TOKEN_FILE: callerTokenFile,
  SF_ADMIN_TOKEN_FILE: adminTokenFile,
  SF_TLS_TARGET: tlsTarget,
  SF_MTLS_TARGET: mtlsTarget,
  SF_CERTS: certs,
} = process.env;
const { vectors } = JSON.parse(
  readFileSync(new URL('./flight_key_vectors.json', import.meta.url), 'utf8'));

async function waitFor(condition, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await condition()) return true;
    await sleep(10);
  }
  return false;
}

async function rejection(promise) {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof SingleFlightError, error);
    return error;
  }
  assert.fail('the call succeeded');
}

async function collect(iterable) {
  const items = [];
  for await (const item of iterable) items.push(item);
  return items;
}

describe('flightKey', () => {
  it('matches the shared vectors', () => {
    for (const { fetcher, key, flight_key: expected } of vectors) {
      assert.equal(flightKey(fetcher, key), expected);
    }
  });
});

describe('the package', () => {
  it("carries the repository's proto, byte for byte", () => {
    const file = 'singleflight/v1/singleflight.proto';
    const copy = readFileSync(new URL(`../../client/node/proto/${file}`, import.meta.url));
    const source = readFileSync(new URL(`../../proto/${file}`, import.meta.url));
    assert.ok(copy.equals(source),
      'client/node/proto differs from proto/: run npm run sync-proto in client/node');
  });
});

describe('client options', () => {
  let dir;
  before(() => { dir = mkdtempSync(join(tmpdir(), 'sf-node-options-')); });
  after(() => rmSync(dir, { recursive: true, force: true }));
  const refused = (options, message) =>
    assert.throws(() => new Client('127.0.0.1:1', options), { name: 'TypeError', message });

  it('refuses contradictory TLS options', () => {
    refused({ tls: {}, credentials: grpc.credentials.createInsecure() }, /exclusive/);
    refused({ tls: { ca: 'x', caFile: 'y' } }, /tls.ca and tls.caFile/);
    refused({ tls: { certFile: 'client.pem' } }, /both tls.cert .* and tls.key/);
    refused({ tls: { key: Buffer.from('x') } }, /both tls.cert .* and tls.key/);
    refused({ tls: { caPath: 'x' } }, /unknown tls option caPath/);
    refused({ tls: 'ca.pem' }, /tls must be true, false or an object/);
  });

  it('refuses a token that is not a header value, without printing it', () => {
    refused({ token: 'secret\nline' }, /^the token must be printable ASCII without spaces$/);
    refused({ token: 'a b' }, /printable ASCII/);
    refused({ token: 't', tokenFile: 'f' }, /exclusive/);
    const empty = join(dir, 'empty');
    writeFileSync(empty, ' \n');
    refused({ tokenFile: empty }, /is empty/);
  });

  it("accepts '' as no token, and tls: false as plaintext", () => {
    new Client('127.0.0.1:1', { token: '', tls: false }).close();
    new Client('127.0.0.1:1', { tls: false, credentials: grpc.credentials.createInsecure() })
      .close();
  });
});

describe('against singleflightd', { skip: !target && 'SF_TARGET is not set' }, () => {
  let client;
  before(() => { client = new Client(target, { timeoutMs: 10000 }); });
  after(() => client.close());
  const flights = async (key) => (await client.inflight()).filter((f) => f.key === key);

  it('lets concurrent callers share one flight', async () => {
    const results = await Promise.all(
      [1, 2, 3].map(() => client.do('js:shared', { fetcher: 'slow' })));
    assert.deepEqual(new Set(results.map((r) => r.value.toString())), new Set(['js:shared']));
    assert.ok(results.every((r) => r.shared));
  });

  it('hands the payload to the fetcher', async () => {
    const { value, shared } = await client.do('js:payload', { payload: 'hello' });
    assert.equal(value.toString(), 'hello');
    assert.equal(shared, false);
  });

  it('maps an unknown fetcher to NOT_FOUND', async () => {
    const error = await rejection(client.do('x', { fetcher: 'no-such-fetcher' }));
    assert.equal(error.codeName, 'NOT_FOUND');
    assert.match(error.details, /no-such-fetcher/);
  });

  it('maps an empty key to INVALID_ARGUMENT', async () => {
    assert.equal((await rejection(client.do(''))).codeName, 'INVALID_ARGUMENT');
  });

  it('gives up at the call deadline', async () => {
    const start = Date.now();
    const error = await rejection(client.do('js:deadline', { fetcher: 'slow', timeoutMs: 200 }));
    assert.equal(error.codeName, 'DEADLINE_EXCEEDED');
    assert.ok(Date.now() - start < 900);
  });

  it('gives up at the client default deadline', async () => {
    const hurried = new Client(target, { timeoutMs: 200 });
    try {
      const error = await rejection(hurried.do('js:default-deadline', { fetcher: 'slow' }));
      assert.equal(error.codeName, 'DEADLINE_EXCEEDED');
    } finally {
      hurried.close();
    }
  });

  it('lists flights with their waiters', async () => {
    const calls = [1, 2].map(() => client.do('js:waiters', { fetcher: 'slow' }));
    const joined = await waitFor(async () =>
      (await flights('js:waiters')).some((f) => f.waiters === 2));
    const [flight] = await flights('js:waiters');
    await Promise.all(calls);
    assert.ok(joined);
    assert.equal(flight.fetcher, 'slow');
    assert.ok(flight.ageMs > 0);
    assert.equal(flight.forgotten, false);
  });

  it('forgets a flight in progress', async () => {
    const first = client.do('js:forget', { fetcher: 'slow' });
    assert.ok(await waitFor(async () => (await flights('js:forget')).length === 1));
    assert.equal(await client.forget('js:forget', { fetcher: 'slow' }), true);
    assert.equal(await client.forget('js:forget', { fetcher: 'slow' }), false);
    const later = client.do('js:forget', { fetcher: 'slow' });
    // The later caller starts a new flight beside the forgotten one.
    const both = await waitFor(async () =>
      (await flights('js:forget')).map((f) => f.forgotten).sort().join() === 'false,true');
    const results = await Promise.all([first, later]);
    assert.ok(both);
    assert.deepEqual(results.map((r) => r.shared), [false, false]);
  });

  it('round-trips stream ids', async () => {
    const requests = [{ key: 'a', id: 7 }, { key: '', id: 8 }, { key: 'b', id: 2 ** 40 }, 'c'];
    const results = new Map((await collect(client.stream(requests))).map((r) => [r.id, r]));
    assert.deepEqual([...results.keys()].sort((x, y) => x - y), [4, 7, 8, 2 ** 40]);
    assert.equal(results.get(7).value.toString(), 'a');
    assert.equal(results.get(2 ** 40).request.key, 'b');
    assert.equal(results.get(4).value.toString(), 'c');
    assert.equal(results.get(8).error.codeName, 'INVALID_ARGUMENT');
  });

  it('streams results in completion order, from an async iterable too', async () => {
    async function* requests() {
      yield { key: 'js:stream-slow', fetcher: 'slow' };
      yield 'js:fast';
    }
    const ids = (await collect(client.stream(requests()))).map((r) => r.id);
    assert.deepEqual(ids, [2, 1]);
  });

  it('gives up a stream at its deadline', async () => {
    const error = await rejection(collect(
      client.stream([{ key: 'js:stream-deadline', fetcher: 'slow' }], { timeoutMs: 200 })));
    assert.equal(error.codeName, 'DEADLINE_EXCEEDED');
  });
});

describe('against the fake server', { skip: !fakeTarget && 'SF_FAKE_TARGET is not set' }, () => {
  let client;
  before(() => { client = new Client(fakeTarget, { timeoutMs: 10000 }); });
  after(() => client.close());
  const attempts = async (key) =>
    (await client.inflight()).filter((f) => f.key === key).map((f) => f.waiters);

  it('sends the flight key with Do', async () => {
    for (const { fetcher, key, flight_key: expected } of vectors) {
      assert.equal((await client.do(key, { fetcher })).value.toString(), expected);
    }
  });

  it("sends a stream's first request's flight key", async () => {
    const results = await collect(client.stream([{ key: 'hello', fetcher: 'slow' }, 'other']));
    assert.deepEqual(new Set(results.map((r) => r.value.toString())), new Set(['93923c4fd69e8af0']));
  });

  it('retries UNAVAILABLE', async () => {
    const { value } = await client.do('flaky:js', { fetcher: 'slow' });
    assert.equal(value.toString(), flightKey('slow', 'flaky:js'));
    assert.deepEqual(await attempts('flaky:js'), [3]);
  });

  it('never retries Forget', async () => {
    assert.equal((await rejection(client.forget('flaky:js-forget'))).codeName, 'UNAVAILABLE');
    assert.deepEqual(await attempts('flaky:js-forget'), [1]);
  });

  it('can turn retries off', async () => {
    const once = new Client(fakeTarget, { retry: { maxAttempts: 1 } });
    try {
      assert.equal((await rejection(once.do('flaky:js-once'))).codeName, 'UNAVAILABLE');
    } finally {
      once.close();
    }
    assert.deepEqual(await attempts('flaky:js-once'), [1]);
  });
});

describe('with tokens', {
  skip: !(tokenTarget && callerTokenFile && adminTokenFile) && 'SF_TOKEN_TARGET is not set',
}, () => {
  let anonymous;
  let caller;
  let admin;
  before(() => {
    const options = { timeoutMs: 10000 };
    anonymous = new Client(tokenTarget, options);
    // Its file ends with a newline: dropped, as the server does.
    caller = new Client(tokenTarget, { ...options, tokenFile: callerTokenFile });
    admin = new Client(tokenTarget,
      { ...options, token: readFileSync(adminTokenFile, 'utf8').trim() });
  });
  after(() => [anonymous, caller, admin].forEach((client) => client.close()));

  it('gets UNAUTHENTICATED without a token', async () => {
    const error = await rejection(anonymous.do('js:no-token'));
    assert.equal(error.codeName, 'UNAUTHENTICATED');
    assert.match(error.details, /authorization: Bearer TOKEN/);
    assert.equal((await rejection(collect(anonymous.stream(['js:no-token'])))).codeName,
      'UNAUTHENTICATED');
    assert.equal((await rejection(anonymous.inflight())).codeName, 'UNAUTHENTICATED');
  });

  it('gets UNAUTHENTICATED with a wrong token', async () => {
    const wrong = new Client(tokenTarget, { token: 'not-the-token' });
    try {
      assert.equal((await rejection(wrong.do('js:wrong-token'))).codeName, 'UNAUTHENTICATED');
    } finally {
      wrong.close();
    }
  });

  it('calls Do and DoStream with the caller token', async () => {
    assert.equal((await caller.do('js:caller')).value.toString(), 'js:caller');
    const [result] = await collect(caller.stream(['js:caller-stream']));
    assert.equal(result.error, null);
    assert.equal(result.value.toString(), 'js:caller-stream');
  });

  it('is refused Forget and InFlight with the caller token', async () => {
    assert.equal((await rejection(caller.forget('js:caller'))).codeName, 'PERMISSION_DENIED');
    assert.equal((await rejection(caller.inflight())).codeName, 'PERMISSION_DENIED');
  });

  it('calls everything with the admin token', async () => {
    assert.equal((await admin.do('js:admin', { payload: new Uint8Array([104, 105]) }))
      .value.toString(), 'hi');
    assert.equal(await admin.forget('js:admin'), false);
    assert.ok(Array.isArray(await admin.inflight()));
  });
});

describe('over TLS', {
  skip: !(tlsTarget && certs && callerTokenFile) && 'SF_TLS_TARGET is not set',
}, () => {
  const once = { timeoutMs: 10000, retry: { maxAttempts: 1 } };
  async function call(options, key = 'js:tls') {
    const client = new Client(tlsTarget, { ...once, ...options });
    try {
      return await client.do(key);
    } finally {
      client.close();
    }
  }

  it('calls with a CA file and a token', async () => {
    const { value } = await call({ tls: { caFile: join(certs, 'ca.pem') },
      tokenFile: callerTokenFile });
    assert.equal(value.toString(), 'js:tls');
  });

  it('calls with the CA as a Buffer or a string', async () => {
    const ca = readFileSync(join(certs, 'ca.pem'));
    const token = readFileSync(callerTokenFile, 'utf8').trim();
    assert.equal((await call({ tls: { ca }, token })).value.toString(), 'js:tls');
    assert.equal((await call({ tls: { ca: ca.toString() }, token })).value.toString(),
      'js:tls');
  });

  it('gets UNAUTHENTICATED without a token', async () => {
    const error = await rejection(call({ tls: { caFile: join(certs, 'ca.pem') } }));
    assert.equal(error.codeName, 'UNAUTHENTICATED');
  });

  it('fails with UNAVAILABLE in plaintext, or trusting only the system roots', async () => {
    assert.equal((await rejection(call({ tokenFile: callerTokenFile }))).codeName,
      'UNAVAILABLE');
    assert.equal((await rejection(call({ tls: true, tokenFile: callerTokenFile }))).codeName,
      'UNAVAILABLE');
  });
});

describe('over mutual TLS', {
  skip: !(mtlsTarget && certs) && 'SF_MTLS_TARGET is not set',
}, () => {
  const once = { timeoutMs: 10000, retry: { maxAttempts: 1 } };
  async function call(tls) {
    const client = new Client(mtlsTarget, { ...once, tls });
    try {
      return await client.do('js:mtls');
    } finally {
      client.close();
    }
  }

  it('calls with certificate files', async () => {
    const { value } = await call({ caFile: join(certs, 'ca.pem'),
      certFile: join(certs, 'client.pem'), keyFile: join(certs, 'client.key') });
    assert.equal(value.toString(), 'js:mtls');
  });

  it('calls with PEM buffers', async () => {
    const pem = (name) => readFileSync(join(certs, name));
    const { value } = await call({ ca: pem('ca.pem'), cert: pem('client.pem'),
      key: pem('client.key') });
    assert.equal(value.toString(), 'js:mtls');
  });

  it('fails with UNAVAILABLE without a client certificate', async () => {
    const error = await rejection(call({ caFile: join(certs, 'ca.pem') }));
    assert.equal(error.codeName, 'UNAVAILABLE');
  });
});
